"""What the benchmarks share: the SHD-shaped workload, the calibrated network, the timing and memory
measurement, one process per configuration, and the JSON record with the machine it ran on."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import platform
import resource
import statistics
import sys
import time

SHD_TRAIN_SAMPLES = 8156


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_rss_bytes() -> int:
    """The process's peak RSS since the last :func:`reset_peak_rss` (VmHWM; the lifetime peak
    where the kernel offers no reset)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def reset_peak_rss() -> None:
    """Start a new peak-RSS window (Linux: writing 5 to clear_refs resets VmHWM), so that set-up
    work before the measured steps (calibration, data) cannot stand in for their peak."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def workload(n_steps: int, batch: int, seed: int):
    import numpy as np

    from eventkit.data import SpikeData

    rng = np.random.default_rng(seed)
    per_sample = 8 * n_steps  # 8 spikes per ms at dt = 1 ms
    steps = np.sort(rng.integers(0, n_steps, (batch, per_sample)), axis=1).ravel()
    channels = rng.integers(0, 700, batch * per_sample)
    offsets = np.arange(batch + 1, dtype=np.int64) * per_sample
    labels = rng.integers(0, 20, batch)
    return SpikeData(offsets, steps, channels, labels, 700, n_steps, 1.0, 20)


def device_problem(device: str) -> str | None:
    """Why the benchmark cannot run on ``device`` (one line ending in the fix), or None."""
    if device != "cuda":
        return None
    from eventkit.engine.backends.cuda import cuda_problem, simulator_enabled

    if simulator_enabled():
        return "NUMBA_ENABLE_CUDASIM=1 runs the CUDA simulator, which cannot be timed. Fix: unset it"
    return cuda_problem(cpu="--device cpu")


def placed(net, device: str):
    """``net`` with its parameters on ``device`` (the cuda backend's results follow them)."""
    return net.to(device) if device == "cuda" else net


def calibrated_net(
    hidden: int,
    n_steps: int,
    data,
    target_rate: float,
    device: str = "cpu",
    learn_tau=None,
    tau_per_neuron=False,
    neuron=None,
):
    """An EventpropNet whose hidden layer fires ``target_rate`` spikes per neuron per second
    (bisection on the mean input weight); ``learn_tau``, ``tau_per_neuron``, ``neuron`` (default
    LIF) as for EventpropNet (per-neuron values start at the model's, so the network fires as it
    does without)."""
    import torch

    from eventkit.engine import EventpropNet

    lo, hi = 0.0, 0.2
    net = None
    for _ in range(14):
        mean = 0.5 * (lo + hi)
        net = EventpropNet(
            700,
            20,
            hidden=hidden,
            recurrent=True,
            n_steps=n_steps,
            init=dict(ff_mean=mean, ff_std=0.01, rec_std=0.02, out_std=0.03),
            generator=torch.Generator().manual_seed(0),
            backend=device,
            learn_tau=learn_tau,
            tau_per_neuron=tau_per_neuron,
            **({"neuron": neuron} if neuron is not None else {}),
        )
        net = placed(net, device)
        with torch.no_grad():
            rate = net(data).counts.mean().item() * 1000.0 / n_steps
        if abs(rate - target_rate) < 0.5:
            break
        lo, hi = (mean, hi) if rate < target_rate else (lo, mean)
    return net, rate


def keep_parameters(params):
    """A function that puts ``params`` back to their values now (a benchmark calls it after each
    timed train step, so that every step runs the same network)."""
    import torch

    params = list(params)
    start = [p.detach().clone() for p in params]

    def restore() -> None:
        with torch.no_grad():
            for p, p0 in zip(params, start):
                p.copy_(p0)

    return restore


def cpu_step_seconds(net, opt, data, labels, restore) -> float:
    """CPU time (``process_time``, every thread of the process) of one train step of the engine's
    ``net`` on ``data``: forward, cross-entropy, backward, optimizer step and the delays' clamp.
    ``restore`` (:func:`keep_parameters`) then puts the parameters back, outside the clock."""
    import time

    import torch.nn.functional as F

    t0 = time.process_time()
    opt.zero_grad()
    F.cross_entropy(net(data).readout, labels).backward()
    opt.step()
    net.clamp_delays()
    spent = time.process_time() - t0
    restore()
    return spent


def measure(loss_fn, opt, params, repeats, device: str = "cpu"):
    """Median seconds of forward (incl. loss), backward and the whole train step over
    ``repeats`` steps after one warm-up step (and the fastest train step, ``train_step_min``), and
    the peak memory growth (MB): the process's peak
    RSS during the steps (warm-up included: it allocates what training holds) over its RSS before
    the first step; on ``device="cuda"`` torch's peak GPU memory allocated over the allocation
    before the first step, and every time is taken after the device finished. Compile or load
    compiled kernels before calling this (:func:`warm`).

    Every step starts from the same ``params`` (put back after each step, outside the clock): the
    optimizer's updates would otherwise move a spiking network's activity, and with it the cost of
    an event-driven step, away from the calibrated workload while it is timed (at the delay
    benchmark's learning rates, 8 Adam steps took its undelayed network from ~7200 to ~10500
    hidden spikes per sample and the delayed one to ~5100). The optimizer's state still advances;
    its step costs the same."""
    import torch

    gpu = device == "cuda"
    restore = keep_parameters(params)

    def clock():
        if gpu:
            torch.cuda.synchronize()
        return time.perf_counter()

    def step():
        t0 = clock()
        loss = loss_fn()
        t1 = clock()
        opt.zero_grad()
        loss.backward()
        t2 = clock()
        opt.step()
        t3 = clock()
        return dict(forward=t1 - t0, backward=t2 - t1, train_step=t3 - t0)

    if gpu:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        reset_peak_rss()
        base = rss_bytes()
    step()
    restore()
    times = {}
    for _ in range(repeats):
        for key, value in step().items():
            times.setdefault(key, []).append(value)
        restore()
    peak = torch.cuda.max_memory_allocated() if gpu else peak_rss_bytes()
    summary = {k: statistics.median(v) for k, v in times.items()}
    summary["train_step_min"] = min(times["train_step"])  # the least disturbed step, beside the median
    return summary, (peak - base) / 2**20


def warm(net, data) -> None:
    """Load (or compile) the forward and backward kernels on one sample, so that the measured
    memory is training's, not the JIT's."""
    net(data.subset([0])).readout.sum().backward()
    net.zero_grad(set_to_none=True)


def in_process(target, *args):
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=target, args=(*args, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def device_info(device: str) -> dict:
    """The device the results were measured on, for the JSON record."""
    if device != "cuda":
        return dict(device=device)
    import torch
    from numba import cuda

    return dict(
        device=device,
        gpu=torch.cuda.get_device_name(),
        torch_cuda=torch.version.cuda,
        numba_cuda_runtime=".".join(map(str, cuda.runtime.get_version())),
    )


def write_json(path: str, rows: list, **meta) -> None:
    """The results with the machine and versions they were measured with (atomic write)."""
    import numba
    import torch

    meta = dict(
        machine=platform.machine(),
        processor=platform.processor(),
        cpus=os.cpu_count(),
        python=sys.version.split()[0],
        torch=torch.__version__,
        numba=numba.__version__,
        numba_threads=numba.get_num_threads(),
        **meta,
    )
    with open(path + ".tmp", "w") as f:
        json.dump(dict(meta=meta, results=rows), f, indent=2)
    os.replace(path + ".tmp", path)
    print(f"wrote {path}")
