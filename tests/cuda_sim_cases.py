"""CPU-vs-CUDA cases for :mod:`test_engine_cuda`, run in a process of their own under numba's CUDA
simulator (``NUMBA_ENABLE_CUDASIM=1`` must be set before numba is imported, which the pytest
process has long done; ``--device``: on a real GPU instead). ``python tests/cuda_sim_cases.py
OUT.npz`` runs every case on both
backends and stores, per case and quantity, ``<case>/<quantity>/cpu`` and ``.../cuda``; the
assertions live in the test module. Not collected by pytest (no ``test_`` prefix).

Each case is a tiny network (a few neurons, few steps: the simulator runs one Python thread per
CUDA thread) whose block size is smaller than its populations, so every thread owns several
neurons and several targets of each spike.
"""

from __future__ import annotations

import os
import sys
from dataclasses import replace

ON_DEVICE = "--device" in sys.argv
if __name__ == "__main__" and not ON_DEVICE:
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"
    # barrier waits in the simulator otherwise cost a whole 5 ms GIL switch interval each
    sys.setswitchinterval(1e-5)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from eventkit.engine import (
    ALIF,
    LI,
    LIF,
    Delay,
    EventpropNet,
    ExpWeightedMeanV,
    FakeQuant,
    FirstSpike,
    MaxV,
    PerStepV,
    Simulation,
    SumV,
    spike_count_regularizer,
)
from engine_cases import Oscillator  # noqa: E402

THREADS = 4  # block size: smaller than every hidden population


def lock_simulator_shared_arrays() -> None:
    """numba-cuda's simulator makes a block's ``cuda.shared.array`` on first use, keyed by the
    calling line, with an unlocked look-up-then-insert (``FakeCUDAShared.array``). When the
    interpreter switches threads between the two (likely with the short switch interval above),
    two CUDA threads each get an array of their own, and a block scan then reads another thread's
    uninitialised memory (a garbage spike-record index, seen in about half of all runs). This
    makes the look-up and insert one locked step; the rest is the simulator's own code."""
    import threading
    import traceback

    from numba.cuda.simulator import kernelapi

    lock = threading.Lock()
    original = kernelapi.FakeCUDAShared.array

    def array(self, shape, dtype, alignment=None):
        if alignment is not None or shape == 0:  # no per-line allocation on these paths
            return original(self, shape, dtype, alignment)
        if isinstance(dtype, kernelapi.types.Type):
            dtype = kernelapi.numpy_support.as_dtype(dtype)
        caller = traceback.extract_stack(sys._getframe())[-2][0:2]  # the kernel line, as the original
        with lock:
            res = self._allocations.get(caller)
            if res is None:
                res = self._allocations[caller] = np.empty(shape, dtype)
            return res

    kernelapi.FakeCUDAShared.array = array


class GridLIF(LIF):
    """LIF whose spikes act at the end of their step (``Coefficients.grid``), as a chip's do."""

    name = "grid_lif"

    def coefficients(self, dt):
        return replace(super().coefficients(dt), grid=True)


def random_data(rng, n_samples, n_in, n_steps, rate):
    from eventkit.data import from_samples

    samples = []
    for _ in range(n_samples):
        n = int(rng.integers(*rate))
        samples.append((rng.integers(0, n_steps, n), rng.integers(0, n_in, n)))
    return from_samples(samples, rng.integers(0, 3, n_samples), n_channels=10, n_steps=n_steps, dt=1.0, n_classes=3)


def quantise(weights):
    """A fake quantisation: weights on a 1/32 grid, hidden layer 0's threshold lowered."""
    return FakeQuant({k: np.round(w * 32) / 32 for k, w in weights.items()}, {0: 0.8})


# learnable fractional delays on every connection kind
EXACT_DELAYS = {
    "ff": Delay(max=4.0, init=(0.0, 4.0)),
    "rec": Delay(max=3.0, init=(0.0, 3.0)),
    "out": Delay(max=2.5, init=(0.0, 2.5)),
}

# two recurrent layers of a model only the description-driven kernels run, an LI output
OSCILLATORS = dict(
    hidden=[7, 5],
    neuron=Oscillator(),
    output=LI(),
    readout=ExpWeightedMeanV(),
    init=dict(ff_mean=1.2, ff_std=0.4, rec_std=0.2, out_std=0.3),
)

CASES = {
    # LI output, recurrent, exp-weighted readout, cross-entropy + spike-count regulariser (its
    # kick enters the backward jumps); float64. The CUDA plan starts with room for 8 spikes per
    # sample, so the forward pass overflows and retries with doubled capacity.
    "rec_regulariser_f64": dict(net=dict(hidden=[7, 5], readout=ExpWeightedMeanV()), loss="ce+reg", capacity=8),
    # spiking output and the first-spike readout (dL/dt_first enters at the first output spike)
    "first_spike_f64": dict(
        net=dict(
            hidden=[6],
            output=LIF(threshold=0.3),
            readout=FirstSpike(tau0=2.0),
            init=dict(ff_mean=0.6, ff_std=0.2, rec_std=0.1, out_mean=0.8, out_std=0.3),
        ),
        loss="ce",
    ),
    # three hidden layers with mixed recurrence, a per-step loss, float32
    "deep_per_step_f32": dict(
        net=dict(
            hidden=[6, 5, 5],
            recurrent=[True, False, True],
            readout=PerStepV(),
            dtype=torch.float32,
            init=dict(ff_mean=1.0, ff_std=0.2, rec_std=0.1, out_std=0.3),
        ),
        loss="mse",
    ),
    # learnable delays (exact mode) on every connection kind
    "delays_exact_f64": dict(
        net=dict(
            hidden=[6, 5],
            readout=SumV(),
            delays=EXACT_DELAYS,
        ),
        loss="ce",
    ),
    # round mode; rec delays learnable but all 0 (undelayed code, delay gradient still
    # accumulated); float32
    "delays_round_f32": dict(
        net=dict(
            hidden=[6],
            readout=MaxV(),
            dtype=torch.float32,
            delays={
                "ff": Delay(max=3.0, mode="round", init=(0.0, 3.0)),
                "rec": Delay(max=2.0, init=(0.0, 0.0)),
                "out": Delay(max=2.0, mode="round", init=(0.5, 2.0)),
            },
        ),
        loss="ce",
    ),
    # spikes on the grid (chip timing), binary input, fake-quantised weights and threshold;
    # float32 with a float32 regulariser
    "grid_binary_quant_f32": dict(
        net=dict(hidden=[6, 5], neuron=GridLIF(), output=LI(), readout=ExpWeightedMeanV(), dtype=torch.float32),
        loss="ce+reg",
        simulation=Simulation(binary_input=True, fake_quantization=quantise),
    ),
    # adaptive thresholds (ALIF) in two recurrent layers: the adaptation's forward, its replay in
    # the backward pass, its adjoint and its jumps at spikes; float64
    "alif_f64": dict(
        net=dict(
            hidden=[7, 5],
            neuron=ALIF(tau_adapt=30.0, adapt_step=0.15),
            readout=ExpWeightedMeanV(),
            init=dict(ff_mean=0.9, ff_std=0.2, rec_std=0.1, out_std=0.3),
        ),
        loss="ce",
    ),
    # ALIF with learnable fractional delays on every connection kind; float32
    "alif_delays_f32": dict(
        net=dict(
            hidden=[6, 5],
            neuron=ALIF(tau_adapt=30.0, adapt_step=0.15),
            readout=SumV(),
            dtype=torch.float32,
            init=dict(ff_mean=0.9, ff_std=0.2, rec_std=0.1, out_std=0.3),
            delays=EXACT_DELAYS,
        ),
        loss="ce",
    ),
    # a model given only by its description (complex eigenvalues, three states), recurrent, with
    # learnable fractional delays on every connection kind: the description-driven kernels,
    # compiled for CUDA from their CPU source; float64
    "described_delays_f64": dict(net=dict(OSCILLATORS, delays=EXACT_DELAYS), loss="ce+reg"),
    # the same model without delays and a spiking described output read by its first spike;
    # float32; the plan starts with room for 8 spikes per sample (overflow and retry)
    "described_first_spike_f32": dict(
        net=dict(
            hidden=[6],
            neuron=Oscillator(),
            output=Oscillator(),
            readout=FirstSpike(tau0=2.0),
            dtype=torch.float32,
            init=dict(ff_mean=1.2, ff_std=0.4, rec_std=0.2, out_mean=1.0, out_std=0.3),
        ),
        loss="ce",
        capacity=8,
    ),
    # the oscillator learning omega, tau, its input gain and threshold per layer, with learnable fractional
    # delays on every connection kind (the models' sums of the backward pass, summed over samples
    # and turned into dL/d(A h), dL/du); float64
    "described_learn_f64": dict(
        net=dict(
            OSCILLATORS,
            delays=EXACT_DELAYS,
            learn_tau={"omega": [0.1, 0.4], "tau": [8.0, 30.0], "gain": [0.5, 2], "level": [0.3, 0.8]},
        ),
        loss="ce",
    ),
    # LIF learning tau_mem and tau_syn per layer, with learnable fractional delays on every
    # connection kind: the CPU runs its specialised kernels, CUDA the same model by its
    # description (learns_closed_form_constants): two derivations, which agree to 4e-12 here
    # (the chain through the description's derivative); float64
    "lif_learn_tau_f64": dict(
        net=dict(
            hidden=[7, 5],
            readout=ExpWeightedMeanV(),
            delays=EXACT_DELAYS,
            learn_tau={"tau_mem": [12.0, 40.0], "tau_syn": [2.0, 10.0]},
            init=dict(ff_mean=0.9, ff_std=0.3, rec_std=0.1, out_std=0.3),
        ),
        loss="ce",
    ),
}


def build(backend: str, spec: dict) -> EventpropNet:
    kw = dict(
        hidden=[6],
        recurrent=True,
        n_steps=20,
        init=dict(ff_mean=0.6, ff_std=0.2, rec_std=0.1, out_std=0.3),
        dtype=torch.float64,
    )
    kw.update(spec["net"])
    net = EventpropNet(n_in=10, n_out=3, generator=torch.Generator().manual_seed(3), backend=backend, **kw)
    if "simulation" in spec:
        net.simulation = spec["simulation"]
    if backend == "cuda":
        net.plan.threads = THREADS
        net.plan.capacity = spec.get("capacity", net.plan.capacity)
    return net


def loss_of(kind: str, out, labels):
    r = out.readout
    if r.dim() == 3:
        r = r.sum(1)
    if kind == "mse":
        return F.mse_loss(r, F.one_hot(labels, 3).to(r.dtype))
    loss = F.cross_entropy(r, labels)
    if kind == "ce+reg":
        loss = loss + spike_count_regularizer(out.counts, 1e-2, 0.5)
    return loss


def run_case(name: str, spec: dict, data) -> dict:
    labels = torch.as_tensor(data.labels)
    res = {}
    for backend in ("cpu", "cuda"):
        net = build(backend, spec)
        out = net(data)
        loss_of(spec["loss"], out, labels).backward()
        sim = net.simulate(data)
        n = sim["n_rec"]
        res[f"{name}/trace/{backend}"] = out.trace.detach().numpy()
        res[f"{name}/t_first/{backend}"] = out.t_first.detach().numpy()
        res[f"{name}/counts/{backend}"] = out.counts.detach().numpy()
        res[f"{name}/n_rec/{backend}"] = n
        for key in ("rec_step", "rec_nrn", "rec_phi"):
            res[f"{name}/{key}/{backend}"] = np.concatenate([sim[key][b, : n[b]] for b in range(len(n))])
        for pname, p in net.named_parameters():
            if p.grad is not None:
                res[f"{name}/grad_{pname}/{backend}"] = p.grad.numpy().copy()
        if backend == "cuda" and name == "rec_regulariser_f64":  # run-to-run determinism
            grads = [p.grad.clone() for p in net.parameters()]
            net.zero_grad()
            loss_of(spec["loss"], net(data), labels).backward()
            res[f"{name}/repeat_max_diff/cuda"] = np.array(
                max(float((g - p.grad).abs().max()) for g, p in zip(grads, net.parameters()))
            )
            res[f"{name}/repeat_max_diff/cpu"] = np.array(0.0)
    return res


def main(path: str) -> None:
    from numba.cuda.core import config

    assert ON_DEVICE or config.ENABLE_CUDASIM, "the CUDA simulator must be on"
    if not ON_DEVICE:
        lock_simulator_shared_arrays()
    rng = np.random.default_rng(20240615)
    results = {}
    for name, spec in CASES.items():
        data = random_data(rng, 2, 10, 20, rate=(25, 40))
        results.update(run_case(name, spec, data))
    np.savez(path, **results)


if __name__ == "__main__":
    main(sys.argv[1])
