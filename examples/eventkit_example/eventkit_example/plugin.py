"""Hook implementations: what this distribution adds to eventkit."""

from __future__ import annotations

import numpy as np
from eventkit.plugin import DatasetSplits, from_samples
from eventkit.plugin import hookimpl


def _moons(n: int, noise: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    labels = rng.integers(0, 2, size=n)
    angle = rng.uniform(0, np.pi, size=n)
    x = np.where(labels == 0, np.cos(angle), 1 - np.cos(angle))
    y = np.where(labels == 0, np.sin(angle), 0.5 - np.sin(angle))
    points = np.stack([x, y], axis=1) + rng.normal(0, noise, size=(n, 2))
    lo, hi = np.array([-1.2, -0.8]), np.array([2.2, 1.3])  # fixed box, so splits share a scale
    return np.clip((points - lo) / (hi - lo), 0, 1), labels


def two_moons(
    n_train: int = 2000,
    n_val: int = 400,
    n_test: int = 400,
    noise: float = 0.1,
    dt: float = 0.5,
    t_min: float = 10.0,
    t_max: float = 40.0,
    duration: float = 60.0,
    seed: int = 0,
) -> DatasetSplits:
    """Points of two interleaved half circles; inputs x, 1-x, y, 1-y fire at latencies in
    [t_min, t_max] ms and a bias input fires at t_min."""
    for key, value in (("n_train", n_train), ("n_test", n_test)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"two_moons: {key} must be a positive integer, got {value!r}")
    if not 0 <= t_min < t_max < duration:
        raise ValueError(f"two_moons: need 0 <= t_min < t_max < duration, got {t_min}, {t_max}, {duration}")
    n_steps = int(round(duration / dt))
    rngs = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3)]

    def split(n: int, rng: np.random.Generator):
        points, labels = _moons(n, noise, rng)
        feats = np.concatenate([points, 1 - points], axis=1)  # x, y, 1-x, 1-y
        times = t_min + feats * (t_max - t_min)
        steps = np.minimum(np.round(times / dt).astype(np.int64), n_steps - 1)
        bias = int(round(t_min / dt))
        samples = [(np.append(s, bias), np.arange(5)) for s in steps]
        return from_samples(
            samples, labels, n_channels=5, n_steps=n_steps, dt=dt, n_classes=2, meta={"dataset": "two_moons"}
        )

    return DatasetSplits(
        train=split(n_train, rngs[0]), test=split(n_test, rngs[2]), val=split(n_val, rngs[1]) if n_val else None
    )


@hookimpl
def register_datasets(register):
    register("two_moons", two_moons, description="two interleaved half circles as spike latencies (example plugin)")


@hookimpl
def register_config_dirs(register):
    register("pkg://eventkit_example.conf")
