"""Test helpers for eventkit and its plugins: small networks and spike data for engine tests,
a finite-difference gradient check, the tiny command-line run the run/CLI tests share, a plugin
distribution installed in a directory of its own, a run's test accuracy recomputed from its
directory, and scripts run with more numba threads than cores.

Plugins' test suites import these (``from eventkit.plugin.testing import random_data``) the way Hydra's
plugins use ``hydra.test_utils``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from eventkit.data import from_samples
from eventkit.engine import EventpropNet


def random_data(rng, n_samples, n_in, n_steps, rate=(20, 60), n_classes=3, dt=1.0):
    samples = []
    for _ in range(n_samples):
        n = int(rng.integers(*rate))
        samples.append((rng.integers(0, n_steps, n), rng.integers(0, n_in, n)))
    labels = rng.integers(0, n_classes, n_samples)
    return from_samples(samples, labels, n_channels=n_in, n_steps=n_steps, dt=dt, n_classes=n_classes)


def spike_pattern(net: EventpropNet, data):
    """Every recorded spike (step and neuron) plus the output trace's shape: equal patterns mean a
    perturbation changed no spike."""
    rec = net.simulate(data)
    return [
        (rec["rec_step"][b, : rec["n_rec"][b]].tobytes(), rec["rec_nrn"][b, : rec["n_rec"][b]].tobytes())
        for b in range(len(data))
    ]


def finite_difference_check(net, data, loss_fn, rng, per_param=6, eps=1e-6):
    """Compare engine gradients with central differences on entries whose perturbation changes no
    spike. Returns (engine, fd) arrays of the checked entries."""
    net.zero_grad()
    loss_fn(net(data)).backward()
    base_pattern = spike_pattern(net, data)
    engine, fd = [], []
    for name, p in net.named_parameters():
        checked = 0
        for _ in range(per_param * 4):
            if checked == per_param:
                break
            idx = tuple(int(rng.integers(0, s)) for s in p.shape)
            values = []
            ok = True
            for sign in (1, -1):
                with torch.no_grad():
                    p[idx] += sign * eps
                    if spike_pattern(net, data) != base_pattern:
                        ok = False
                    values.append(loss_fn(net(data)).item())
                    p[idx] -= sign * eps
            if not ok:
                continue
            engine.append(p.grad[idx].item())
            fd.append((values[0] - values[1]) / (2 * eps))
            checked += 1
    return np.array(engine), np.array(fd)


def two_pattern_task(rng, n, n_in=20, n_steps=60):
    """Every channel fires twice in both classes, so spike counts carry no information: class 0 is
    a sweep up the channels, class 1 a sweep down, with timing jitter. Only timing separates them."""
    samples, labels = [], []
    for _ in range(n):
        y = int(rng.integers(0, 2))
        chans = np.repeat(np.arange(n_in), 2)
        order = chans if y == 0 else n_in - 1 - chans
        steps = np.clip(2 * order + rng.integers(-2, 3, chans.size) + 5, 0, n_steps - 1)
        samples.append((steps, chans))
        labels.append(y)
    return from_samples(samples, labels, n_channels=n_in, n_steps=n_steps, dt=1.0, n_classes=2)


def accuracy(net, data):
    with torch.no_grad():
        return float((net.predict(net(data).readout).numpy() == data.labels).mean())


def train_until(net, train, test, max_epochs, target=0.95, lr=0.01, batch=32):
    """Adam + cross-entropy epochs over ``train`` until ``test`` accuracy reaches ``target``;
    returns the final test accuracy."""
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    acc = accuracy(net, test)
    for _ in range(max_epochs):
        for b in range(0, len(train), batch):
            part = train.subset(np.arange(b, min(b + batch, len(train))))
            opt.zero_grad()
            F.cross_entropy(net(part).readout, torch.as_tensor(part.labels)).backward()
            opt.step()
        acc = accuracy(net, test)
        if acc >= target:
            break
    return acc


def tiny_run(
    *, epochs: int = 1, hidden: int = 20, n_train: int = 120, n_eval: int = 40, batch_size: int = 40
) -> list[str]:
    """Overrides for a seconds-long default (Yin-Yang) run: small splits, a small hidden layer
    with input weights large enough to spike, no progress bars."""
    return [
        f"dataset.n_train={n_train}",
        f"dataset.n_val={n_eval}",
        f"dataset.n_test={n_eval}",
        f"network.hidden={hidden}",
        "network.init.ff_mean=3.0",
        "network.init.ff_std=1.0",
        f"trainer.epochs={epochs}",
        f"trainer.batch_size={batch_size}",
        "trainer.progress=false",
    ]


def run_cli(
    *args: str,
    cwd: str | Path | None = None,
    env: dict | None = None,
    timeout: float = 600,
    module: str = "eventkit",
    **kw,
) -> subprocess.CompletedProcess:
    """``python -m eventkit ARGS`` in a subprocess (text output captured; ``env`` adds to the
    current environment)."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        **kw,
    )


def installed_apart(project: str | Path, target: str | Path, timeout: float = 600) -> dict:
    """pip-install the distribution at ``project`` (its own pyproject; no dependencies) into the
    directory ``target``, leaving the current environment untouched, and return the environment
    variables that put it first on ``PYTHONPATH``, for :func:`run_cli`'s ``env``: a plugin's test
    that the installed distribution, not its source folder, is what eventkit finds."""
    target = Path(target)
    pip = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(target), str(project)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if pip.returncode != 0:
        raise AssertionError(f"pip install {project} --target {target} failed:\n{pip.stderr[-3000:]}")
    return {"PYTHONPATH": os.pathsep.join([str(target), os.environ.get("PYTHONPATH", "")])}


def checkpoint_test_accuracy(run_dir: str | Path, checkpoint: str = "best") -> tuple[float, int]:
    """Test accuracy of a finished run's ``best`` or ``last`` checkpoint, recomputed from the run
    directory alone: its config_resolved.yaml rebuilds the test split and the network (as the run
    built them, the target's ``prepare`` included), the checkpoint's weights are loaded, and the
    accuracy is mean(prediction == label) over the whole split in one batch -- without
    :func:`eventkit.training.loop.evaluate` or summary.json. Returns (accuracy, test samples)."""
    from omegaconf import OmegaConf

    from eventkit.running.pipeline import load_data
    from eventkit.rundir.checkpoints import load_checkpoint, model_state
    from eventkit.components.networks import NetworkConfig, build_network
    from eventkit.components.targets import as_target
    from eventkit.base.registry import get_registry
    from eventkit.rundir.layout import BEST, LAST
    from eventkit.base.schema import from_config, plain

    run_dir = Path(run_dir)
    cfg = OmegaConf.load(run_dir / "config_resolved.yaml")
    registry = get_registry()
    splits, _ = load_data(cfg, registry)
    net = build_network(
        from_config(NetworkConfig, cfg.network, "network"),
        {"neuron": plain(cfg.neuron), "readout": plain(cfg.readout)},
        registry,
        splits.train,
        int(cfg.seed),
    )
    as_target(registry.build("target", plain(cfg.target)), cfg.target.name).prepare(net)
    tensors, _ = load_checkpoint(run_dir / "checkpoints" / {"best": BEST, "last": LAST}[checkpoint])
    net.load_state_dict(model_state(tensors))
    test = splits.test
    with torch.no_grad():
        predicted = net.predict(net(test).readout).numpy()
    return float(np.mean(predicted == test.labels)), len(test)


_thread_probe = None


def threads_in_use(n_iterations: int = 64) -> int:
    """How many distinct numba worker threads a parallel loop of ``n_iterations`` (each with a
    little work, so that every scheduler spreads it) runs on at the current
    ``numba.set_num_threads`` setting."""
    global _thread_probe
    if _thread_probe is None:
        import numba

        @numba.njit(parallel=True)
        def probe(n):
            ids = np.empty(n, np.int64)
            for i in numba.prange(n):
                acc = 0.0
                for k in range(20000):
                    acc += np.sqrt(k + i)
                ids[i] = numba.get_thread_id() + (acc < 0)
            return ids

        _thread_probe = probe
    return len(set(_thread_probe(n_iterations).tolist()))


def run_with_threads(script: str, max_threads: int = 4, timeout: float = 600) -> str:
    """Run ``script`` with ``python -c`` in a fresh interpreter whose numba may use up to
    ``max_threads`` threads (``NUMBA_NUM_THREADS``, fixed when numba is imported, so that thread
    counts above 1 exist even on a one-core machine); returns its stdout, raises AssertionError
    with its stderr when it fails."""
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "NUMBA_NUM_THREADS": str(max_threads)},
    )
    if out.returncode != 0:
        raise AssertionError(f"the script failed (exit {out.returncode}):\n{out.stderr[-4000:]}")
    return out.stdout
