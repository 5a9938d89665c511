"""The CUDA kernels compile for a real GPU, without one: numba-cuda lowers them through NVVM to PTX
(``cuda.compile_ptx``, compute capability 8.0) for the argument types the cuda backend passes --
the named tuples of arrays (:class:`Spikes`, :class:`Net`, :class:`Outputs`, :class:`Records`),
float32 and float64, with and without delays; and the description-driven kernels' CUDA build
(:mod:`eventkit.engine.backends._linear_cuda`) for a model only they run.

The simulator tests (tests/test_engine_cuda.py) run the kernels as Python, which accepts code a GPU
compiler refuses (an untyped tuple field, a float64 operation on a float32 shared array, a Python
object in a kernel); this test catches those. Needs NVVM and NVRTC
(``pip install nvidia-cuda-nvcc-cu12 nvidia-cuda-nvrtc-cu12``, part of ``eventkit[test]``).
"""

from __future__ import annotations

import numpy as np
import pytest

import torch

from eventkit.engine import Delay, EventpropNet

cuda = pytest.importorskip("numba.cuda", reason="numba-cuda is not installed (pip install 'eventkit[test]')")


def _compiler_problem() -> str | None:
    from eventkit.engine.backends.cuda import simulator_enabled

    if simulator_enabled():
        return "numba's CUDA simulator is on (NUMBA_ENABLE_CUDASIM=1): nothing is compiled"
    try:
        cuda.compile_ptx(lambda a: None, "(float32[:],)", cc=(8, 0))
    except Exception as exc:  # NVVM/NVRTC not found
        return f"no NVVM/NVRTC ({type(exc).__name__}); pip install nvidia-cuda-nvcc-cu12 nvidia-cuda-nvrtc-cu12"
    return None


CC = (8, 0)  # compute capability compiled for (A100; an H100 runs its PTX too)
pytestmark = pytest.mark.skipif(_compiler_problem() is not None, reason=str(_compiler_problem()))


def _net(delays: bool, dtype, **kw) -> EventpropNet:
    """A recurrent network (3 inputs, 4 hidden, 2 outputs, 8 steps) on the CPU backend, with
    learnable delays on every connection when ``delays``; ``kw``: its neuron models."""
    delay = Delay(max=3.0, init=(0.0, 3.0))
    return EventpropNet(
        n_in=3,
        hidden=[4],
        n_out=2,
        n_steps=8,
        recurrent=True,
        delays={"ff": delay, "rec": delay, "out": delay} if delays else None,
        dtype=torch.float64 if dtype == np.float64 else torch.float32,
        backend="cpu",
        **kw,
    )


def _args(delays: bool, dtype) -> tuple[tuple, tuple]:
    """Host arrays of the forward and backward kernels' arguments, exactly as the cuda backend
    builds them, for a recurrent network (with learnable delays on every connection when
    ``delays``)."""
    from eventkit.engine.backends import _cpu_kernels as K
    from eventkit.engine.backends.cpu import STRUCTURE, kernel_net, records

    net = _net(delays, dtype)
    plan, inputs = net.plan, net._kernel_inputs()
    n_tot = int(plan.pop_off[-1])
    spikes = K.Spikes(np.array([0, 1]), np.array([0], np.int32), np.array([0], np.int32), 8)
    rows = (plan.pop_of, np.zeros(len(plan.pop_off) - 1, np.int8))  # every neuron on its population's row
    kernel = kernel_net({k: getattr(plan, k) for k in STRUCTURE}, plan.tau_mem.astype(dtype), inputs, rows)
    z = [np.zeros((1, n_tot), dtype) for _ in range(4)]
    ring = np.zeros((1, 8 * n_tot), dtype)
    rec = {
        "rec_step": np.zeros((1, 4), np.int32),
        "rec_nrn": np.zeros((1, 4), np.int32),
        "rec_phi": np.zeros((1, 4), dtype),
        "rec_v": np.zeros((1, 4), dtype),
        "rec_i": np.zeros((1, 4), dtype),
        "n_rec": np.zeros(1, np.int64),
        "overflow": np.zeros(1, np.int8),
    }
    out = K.Outputs(np.zeros((1, 8, 2), dtype), np.zeros((1, 2), dtype), np.zeros((1, 4), dtype))
    fwd = (spikes, kernel, (z[0], z[1], ring, z[2]), out, records(rec))
    gw = np.zeros((1, plan.n_w), dtype)
    adapt, rec_a = np.zeros((1, 3, n_tot), dtype), np.zeros((1, 4), dtype)  # threshold adaptation
    bwd = (spikes, kernel, records(rec), out, (*z, ring, np.zeros((1, 2), np.int64), adapt, rec_a), gw, gw.copy())
    return fwd, bwd


@pytest.mark.parametrize("delays", [False, True], ids=["undelayed", "delays"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_kernels_compile_to_ptx(delays, dtype, monkeypatch):
    import types

    import numba
    from numba.cuda import dispatcher

    # device functions ask the current device for its compute capability; there is none here
    monkeypatch.setattr(dispatcher, "get_current_device", lambda: types.SimpleNamespace(compute_capability=CC))

    from eventkit.engine.backends._cuda_kernels import kernels

    forward, backward, sum_samples = kernels(dtype == np.float64)
    fwd_args, bwd_args = _args(delays, dtype)
    for kernel, args in ((forward, fwd_args), (backward, bwd_args)):
        sig = tuple(numba.typeof(a) for a in args)
        ptx, _ = cuda.compile_ptx(kernel.py_func, sig, cc=CC)
        assert ".entry" in ptx and "ld.global" in ptx, f"{kernel.py_func.__name__}: no kernel in the PTX"
    ptx, _ = cuda.compile_ptx(sum_samples.py_func, (numba.typeof(bwd_args[5]), numba.typeof(bwd_args[5][0])), cc=CC)
    assert ".entry" in ptx


def _described_args(delays: bool, dtype) -> tuple[tuple, tuple]:
    """The described kernels' forward and backward arguments as the cuda backend builds them (on
    the host), for a recurrent network of a three-state oscillating model."""
    from engine_cases import Oscillator

    from eventkit.engine import LI
    from eventkit.engine.backends import _cpu_kernels as K
    from eventkit.engine.backends import _linear_kernels as L
    from eventkit.engine.backends import described as D

    net = _net(delays, dtype, neuron=Oscillator(), output=LI())
    plan = net.plan
    knet, model = net._kernel_inputs().described
    S = model.u.shape[1]
    spikes = K.Spikes(np.array([0, 1]), np.array([0], np.int32), np.array([0], np.int32), 8)
    fwd_shapes, bwd_shapes = D.scratch_shapes(knet, model, 1, dtype)
    rec = L.Records(
        np.zeros((1, 4), np.int32),
        np.zeros((1, 4), np.int32),
        np.zeros((1, 4), dtype),
        np.zeros((1, 4, S), dtype),
        np.zeros(1, np.int64),
        np.zeros(1, np.int8),
    )
    out = (np.zeros((1, 8, 2), dtype), np.zeros((1, 2), dtype), np.zeros((1, 4), dtype))
    scratch = L.ForwardScratch(**{k: np.zeros(*v) for k, v in fwd_shapes.items()})
    fwd = (spikes, knet, model, *out, rec, scratch)
    gw, gd = np.zeros((1, plan.n_w)), np.zeros((1, plan.n_w if delays else 1))
    scratch = L.BackwardScratch(**{k: np.zeros(*v) for k, v in bwd_shapes.items()})
    bwd = (spikes, knet, model, rec, *out, gw, gd, D.model_grads(model, 1), scratch)
    return fwd, bwd


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_described_kernels_compile_to_ptx(dtype, monkeypatch):
    """One network with delays per precision: delays change the arrays' contents, not their types."""
    import types

    import numba
    from numba.cuda import dispatcher

    monkeypatch.setattr(dispatcher, "get_current_device", lambda: types.SimpleNamespace(compute_capability=CC))

    from eventkit.engine.backends._linear_cuda import kernels

    fwd, bwd = _described_args(True, dtype)
    n_states = fwd[2].u.shape[1]  # the Model's: the kernels are compiled for it
    for kernel, args in zip(kernels(n_states), (fwd, bwd)):
        sig = tuple(numba.typeof(a) for a in args)
        ptx, _ = cuda.compile_ptx(kernel.py_func, sig, cc=CC)
        assert ".entry" in ptx and "ld.global" in ptx, f"{kernel.py_func.__name__}: no kernel in the PTX"
