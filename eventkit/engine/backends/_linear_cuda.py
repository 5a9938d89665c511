"""The description-driven kernels (:mod:`._linear_kernels`) on CUDA, from the same source.

:mod:`._linear_kernels` writes a sample's forward and backward pass once, as functions of one
sample and one worker's scratch rows (``_forward_one``, ``_backward_one``) that allocate nothing
and call only helpers of their own module, :mod:`._cpu_kernels`' row helpers and
:mod:`._neuron_math`'s formulas. The CPU drivers there run them as ``prange`` tasks; here
:func:`retarget` compiles the very same functions as CUDA device functions, with the model's number
of states fixed at compile time as on the CPU (:mod:`._specialise`), and the drivers give each
sample one CUDA thread (its worker row is its sample index). Nothing of the maths is written
twice: a change to a described model's step, crossing, reset, arrival or adjoint reaches both
backends.

What differs is the parallelism. The specialised CUDA kernels (:mod:`._cuda_kernels`) spread a
sample over a thread block; here a sample is one thread, so a batch fills only ``n_batch``
threads of the GPU. The results are those of the CPU (float64 arithmetic as there; gradients
summed per sample in sample order, no atomics: bit for bit repeatable).
"""

from __future__ import annotations

import types
from functools import lru_cache

from numba import cuda

from . import _linear_kernels as L
from . import _neuron_math as M
from ._specialise import specialise

THREADS = 64  # samples per block


def retarget(module: types.ModuleType, exclude: tuple[str, ...], constants: dict) -> dict:
    """Every numba-compiled function visible in ``module`` (its own and those it imports), compiled
    again as a CUDA device function, in a copy of the module's namespace with ``constants`` set in
    which they call each other (and the ``nm`` formulas) as CUDA functions; ``exclude``: the
    module's CPU drivers."""
    constants = {**constants, "nm": M.compiled(cuda.jit(device=True, inline="always"))}
    return specialise(
        module, constants, lambda obj, copy: cuda.jit(device=True)(copy), select=lambda name, obj: name not in exclude
    )


@lru_cache(maxsize=None)
def kernels(n_states: int):
    """(forward, backward): the CUDA drivers of :mod:`._linear_kernels`' per-sample passes for
    models padded to ``n_states`` states, one thread per sample (launch ``ceil(n_batch /
    THREADS)`` blocks of ``THREADS``)."""
    device = retarget(L, exclude=("forward", "backward"), constants={"NS": n_states})
    forward_one, backward_one = device["_forward_one"], device["_backward_one"]
    input_sums = device["input_sums_to_grads"]

    @cuda.jit
    def forward(spikes, net, model, trace, t_first, counts, rec, scratch):
        b = cuda.grid(1)
        if b < rec.n_rec.shape[0]:
            forward_one(b, spikes, net, model, trace, t_first, counts, rec, scratch, b)

    @cuda.jit
    def backward(spikes, net, model, rec, g_trace, g_tfirst, g_counts, gw, gd, grads, scratch):
        """Sample b's gradients in its own rows ``gw[b]``, ``gd[b]`` (float64) and ``grads``'
        (:class:`~._linear_kernels.ModelGrads`, zeroed by the caller)."""
        b = cuda.grid(1)
        if b < gw.shape[0]:
            gwb, gdb = gw[b], gd[b]
            for k in range(gwb.shape[0]):
                gwb[k] = 0.0
            for k in range(gdb.shape[0]):
                gdb[k] = 0.0
            gm, gu = grads
            scratch.lsum[b][:] = 0.0
            backward_one(b, spikes, net, model, rec, g_trace, g_tfirst, g_counts, gwb, gdb, gm[b], gu[b], scratch, b)
            input_sums(gm[b], gu[b], net, model, scratch, b)

    return forward, backward


__all__ = ["THREADS", "kernels", "retarget"]
