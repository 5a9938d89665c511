"""The Yin-Yang benchmark (Kriener et al. 2021), generated procedurally and seeded.

Points (x, y) in the unit square inside a yin-yang figure of radius ``r_big`` belong to one of
3 classes: yin, yang, or the two small "dots" of radius ``r_small``. Classes are balanced by
rejection sampling. Each point is encoded as spike latencies on 5 input channels:
``x, 1 - x, y, 1 - y`` mapped linearly to ``[t_min, t_max]`` ms, plus a bias spike at
``bias_time`` (default ``t_min``). Latencies are rounded to the nearest dt step. The dataset is
tiny and needs no download, which makes it the quick correctness check for every engine.

Each split draws from its own stream spawned from ``seed``, so changing ``n_train`` never
changes the test set.
"""

from __future__ import annotations

import numpy as np

from eventkit.data.spikes import DatasetSplits, SpikeData

N_CLASSES = 3


def yinyang_class(x: np.ndarray, y: np.ndarray, r_big: float = 0.5, r_small: float = 0.1) -> np.ndarray:
    """Class of each point: 0 yang, 1 yin, 2 dots (points must lie inside the big circle)."""
    d_right = np.hypot(x - 1.5 * r_big, y - r_big)
    d_left = np.hypot(x - 0.5 * r_big, y - r_big)
    is_yin = (
        (d_right <= r_small) | ((d_left > r_small) & (d_left <= 0.5 * r_big)) | ((y > r_big) & (d_right > 0.5 * r_big))
    )
    is_dot = (d_right < r_small) | (d_left < r_small)
    return np.where(is_dot, 2, is_yin.astype(np.int64))


def sample_points(n: int, rng: np.random.Generator, r_big: float = 0.5, r_small: float = 0.1):
    """``n`` points with balanced classes (each label drawn uniformly, then a point of that class)."""
    labels = rng.integers(0, N_CLASSES, size=n)
    need = np.bincount(labels, minlength=N_CLASSES)
    pools: list[list[np.ndarray]] = [[] for _ in range(N_CLASSES)]
    have = np.zeros(N_CLASSES, dtype=np.int64)
    while np.any(have < need):
        # the dots cover ~8 % of the disc: draw enough candidates for the rarest class at once
        m = int(max(1024, 16 * (need - have).max()))
        xy = rng.random((m, 2)) * 2.0 * r_big
        inside = np.hypot(xy[:, 0] - r_big, xy[:, 1] - r_big) <= r_big
        xy = xy[inside]
        cls = yinyang_class(xy[:, 0], xy[:, 1], r_big, r_small)
        for c in range(N_CLASSES):
            if have[c] < need[c]:
                take = xy[cls == c][: need[c] - have[c]]
                pools[c].append(take)
                have[c] += len(take)
    points = np.empty((n, 2))
    for c in range(N_CLASSES):
        points[labels == c] = np.concatenate(pools[c])[: need[c]] if need[c] else np.empty((0, 2))
    return points, labels


def encode(points: np.ndarray, labels: np.ndarray, *, dt: float, t_min: float, t_max: float,
           duration: float, bias: bool, bias_time: float | None) -> SpikeData:  # fmt: skip
    """Latency-encode points as one spike per input channel."""
    x, y = points[:, 0], points[:, 1]
    values = np.stack([x, 1.0 - x, y, 1.0 - y], axis=1)  # in [0, 1]
    times = t_min + values * (t_max - t_min)
    if bias:
        b = t_min if bias_time is None else bias_time
        times = np.concatenate([times, np.full((len(points), 1), float(b))], axis=1)
    n_steps = int(round(duration / dt))
    steps = np.minimum(np.rint(times / dt).astype(np.int64), n_steps - 1)
    n_channels = times.shape[1]
    channels = np.broadcast_to(np.arange(n_channels), steps.shape)
    order = np.argsort(steps, axis=1, kind="stable")
    steps = np.take_along_axis(steps, order, axis=1)
    channels = np.take_along_axis(channels, order, axis=1)
    offsets = np.arange(len(points) + 1, dtype=np.int64) * n_channels
    return SpikeData(
        offsets, steps.ravel(), channels.ravel(), labels, n_channels, n_steps, float(dt), N_CLASSES,
        {"dataset": "yinyang"},
    )  # fmt: skip


def yinyang(
    n_train: int = 5000,
    n_val: int = 1000,
    n_test: int = 1000,
    dt: float = 0.5,
    t_min: float = 10.0,
    t_max: float = 40.0,
    duration: float = 60.0,
    bias: bool = True,
    bias_time: float | None = None,
    r_big: float = 0.5,
    r_small: float = 0.1,
    seed: int = 0,
) -> DatasetSplits:
    """Dataset factory (registered as ``yinyang``). ``n_val = 0`` gives no validation split."""
    for key, value in (("n_train", n_train), ("n_test", n_test)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"yinyang: {key} must be a positive integer, got {value!r}")
    if not isinstance(n_val, (int, np.integer)) or n_val < 0:
        raise ValueError(f"yinyang: n_val must be a non-negative integer, got {n_val!r}")
    if dt <= 0:
        raise ValueError(f"yinyang: dt must be > 0 ms, got {dt}")
    if not 0 <= t_min < t_max:
        raise ValueError(f"yinyang: need 0 <= t_min < t_max, got t_min={t_min}, t_max={t_max}")
    last = max(t_max, t_min if bias_time is None else bias_time)
    if duration <= last:
        raise ValueError(
            f"yinyang: duration ({duration} ms) must exceed the latest input spike ({last} ms) so "
            f"the network can respond; raise duration"
        )
    if bias_time is not None and bias_time < 0:
        raise ValueError(f"yinyang: bias_time must be >= 0 ms, got {bias_time}")
    if not 0 < r_small < 0.5 * r_big:
        raise ValueError(f"yinyang: need 0 < r_small < r_big / 2, got r_small={r_small}, r_big={r_big}")
    streams = np.random.SeedSequence(int(seed)).spawn(3)
    enc = dict(dt=dt, t_min=t_min, t_max=t_max, duration=duration, bias=bias, bias_time=bias_time)

    def split(n, ss):
        pts, lab = sample_points(int(n), np.random.default_rng(ss), r_big, r_small)
        return encode(pts, lab, **enc)

    train = split(n_train, streams[0])
    test = split(n_test, streams[2])
    val = split(n_val, streams[1]) if n_val else None
    return DatasetSplits(train=train, test=test, val=val)
