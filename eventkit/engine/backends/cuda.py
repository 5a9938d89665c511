"""The CUDA backend: numba-cuda kernels (:mod:`._cuda_kernels`), one thread block per sample; a
network of models given only by their description runs :mod:`._linear_kernels`' per-sample passes
compiled for CUDA (:mod:`._linear_cuda`), one thread per sample.

The plan and the per-call kernel inputs are built exactly as the CPU backend builds them (same
flat arrays, same delay decomposition) and then moved to the GPU; the batch's spike lists are
uploaded per call. Kernel buffers and results are torch tensors on the current CUDA device and
the kernels run on torch's current stream, so results flow into the readout and loss without a
copy (they follow the parameters' device: a network left on the CPU gets CPU tensors).

Under numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1`` before numba is imported) the same
kernels run on the CPU, one Python thread per CUDA thread, on numpy arrays: the simulator has
neither ``as_cuda_array`` nor external streams, so :class:`_Arrays` switches between the two.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, NamedTuple

import numpy as np
import torch

from ...data.spikes import SpikeData
from . import _cpu_kernels as K
from . import _linear_kernels as L
from . import described as D
from .cpu import STRUCTURE, CpuBackend, CpuPlan, kernel_net, records

INSTALL_HINT = "Fix: {cpu}, or pip install 'eventkit[cuda]' on a machine with an NVIDIA GPU and driver"


class CudaUnavailable(ValueError):
    """The cuda backend was asked for where it cannot run (one line with the fix)."""


def simulator_enabled() -> bool:
    """True when numba's CUDA simulator is on (NUMBA_ENABLE_CUDASIM=1 at numba's import)."""
    try:
        from numba.cuda.core import config
    except ImportError:  # the CUDA target bundled with numba itself
        from numba.core import config
    return bool(config.ENABLE_CUDASIM)


def cuda_problem(cpu: str = "trainer.device=cpu") -> str | None:
    """Why the cuda backend cannot run here (one line ending in the fix, which offers ``cpu`` as
    the alternative), or None when it can."""
    hint = INSTALL_HINT.format(cpu=cpu)
    try:
        from numba import cuda
    except ImportError as exc:
        return f"the cuda backend needs numba-cuda ({exc}). {hint}"
    if simulator_enabled():
        return None
    if not torch.cuda.is_available():
        return f"no CUDA device or driver found (torch {torch.__version__} sees none). " f"{hint}"
    try:
        ok = cuda.is_available()
    except Exception as exc:  # driver/toolkit load errors surface here
        return f"numba-cuda cannot use the GPU ({type(exc).__name__}: {exc}). {hint}"
    if not ok:
        return f"numba-cuda finds no usable CUDA device or driver. {hint}"
    return None


class _Arrays:
    """Where kernel arrays live: torch CUDA tensors on a device, numpy arrays in the simulator."""

    def __init__(self):
        from numba import cuda

        self.cuda = cuda
        self.sim = simulator_enabled()
        self.device = None if self.sim else torch.device("cuda", torch.cuda.current_device())

    def put(self, a: np.ndarray):
        a = np.ascontiguousarray(a)
        if self.sim:
            return a.copy()
        return torch.from_numpy(a).to(self.device, non_blocking=False)

    def empty(self, shape: tuple, dtype):
        if self.sim:
            return np.empty(shape, dtype=dtype)
        return torch.empty(shape, dtype=_torch_dtype(dtype), device=self.device)

    def zeros(self, shape: tuple, dtype):
        if self.sim:
            return np.zeros(shape, dtype=dtype)
        return torch.zeros(shape, dtype=_torch_dtype(dtype), device=self.device)

    def full(self, shape: tuple, value: float, dtype):
        if self.sim:
            return np.full(shape, value, dtype=dtype)
        return torch.full(shape, value, dtype=_torch_dtype(dtype), device=self.device)

    def put_all(self, arrays: tuple) -> tuple:
        """A (named) tuple of host arrays and numbers with every array on the device."""
        items = [self.put(x) if isinstance(x, np.ndarray) else x for x in arrays]
        return type(arrays)(*items)

    def cast(self, x, dtype):
        """``x`` (a kernel result) in ``dtype``."""
        if self.sim:
            return x.astype(dtype, copy=False)
        return x.to(_torch_dtype(dtype))

    def arg(self, x):
        """A kernel argument: device arrays are handed over by __cuda_array_interface__, also
        inside the (named) tuples the kernels take (numba types a tuple's fields one by one and
        knows no torch tensors)."""
        if isinstance(x, tuple):
            items = [self.arg(e) for e in x]
            return type(x)(*items) if hasattr(x, "_fields") else tuple(items)
        if self.sim or not isinstance(x, torch.Tensor):
            return x
        return self.cuda.as_cuda_array(x.detach())

    def launch(self, kernel, grid: int, block: int, *args) -> None:
        args = tuple(self.arg(a) for a in args)
        if self.sim:
            kernel[grid, block](*args)
        else:
            stream = self.cuda.external_stream(torch.cuda.current_stream().cuda_stream)
            kernel[grid, block, stream](*args)

    def any(self, x) -> bool:
        return bool(x.any()) if self.sim else bool(x.any().item())


def _torch_dtype(dtype) -> torch.dtype:
    return {
        np.dtype(np.float32): torch.float32,
        np.dtype(np.float64): torch.float64,
        np.dtype(np.int32): torch.int32,
        np.dtype(np.int64): torch.int64,
        np.dtype(np.int8): torch.int8,
        np.dtype(np.complex128): torch.complex128,
    }[np.dtype(dtype)]


@dataclass
class CudaPlan(CpuPlan):
    """The CPU plan's arrays (for the host-side input preparation and callers that read
    ``pop_off``), their device copies and the block size."""

    threads: int = 256
    dev: dict | None = None  # device copies of the constant arrays


class CudaInputs(NamedTuple):
    """Per-call kernel inputs on the device (same meaning as :class:`CpuInputs`)."""

    w: Any
    coef: Any
    blk: Any
    d_off: Any
    d_frac: Any
    d_bm: Any
    d_am: Any
    n_slots: int
    dtype: np.dtype
    learn_or_delayed: bool  # some block accumulates delay gradients
    described: tuple | None = None  # described models: the (Net, Model) of _linear_kernels, on the device
    host_model: Any = None  # described models: the Model on the host (for the models' gradients)


class CudaBackend:
    name = "cuda"
    learns_closed_form_constants = False  # learn_tau runs the models by their description

    def __init__(self):
        problem = cuda_problem()
        if problem is not None:
            raise CudaUnavailable(f"trainer.device=cuda: {problem}")
        self._host = CpuBackend()
        self._arrays = _Arrays()

    def plan(
        self,
        topology,
        dt: float,
        n_steps: int,
        *,
        max_spikes: int = 2_000_000,
        n_groups: int = 8,
        threads: int | None = None,
    ) -> CudaPlan:
        """``threads``: the block size (a power of two <= 1024; default: the smallest power of two
        covering the largest population, at least 32 and at most 256; 4 in the simulator)."""
        host = self._host.plan(topology, dt, n_steps, max_spikes=max_spikes, n_groups=n_groups)
        if threads is None:  # the simulator runs a Python thread per CUDA thread: few of them
            widest = max(p.size for p in topology.populations)
            threads = 4 if self._arrays.sim else min(256, max(32, 1 << (widest - 1).bit_length()))
        if threads < 1 or threads > 1024 or threads & (threads - 1):
            raise ValueError(f"cuda backend: threads must be a power of two in [1, 1024], got {threads}")
        plan = CudaPlan(**{f.name: getattr(host, f.name) for f in fields(CpuPlan)}, threads=threads)
        a = self._arrays
        plan.dev = {key: a.put(getattr(plan, key)) for key in STRUCTURE}
        plan.dev["hetero"] = a.put(np.zeros(len(plan.pop_off) - 1, dtype=np.int8))
        plan.dev["tau_mem"] = {dt: a.put(plan.tau_mem.astype(dt)) for dt in (np.float32, np.float64)}
        return plan

    def inputs(
        self, plan: CudaPlan, weights: dict, delays: dict, thresholds: dict, dtype, coefficients: dict | None = None
    ) -> CudaInputs:
        if coefficients and plan.described is None:  # see learns_closed_form_constants
            raise ValueError(
                "the cuda backend learns constants of models given by their description only; build the network "
                "with eventkit.engine.Described(model) (EventpropNet does so for learn_tau), or use backend='cpu'"
            )
        # rows in target order: the CUDA kernels test each synapse's sub-step part themselves
        host = self._host.inputs(plan, weights, delays, thresholds, dtype, coefficients, sorted_rows=False)
        a = self._arrays
        learn = bool(host.blk[:, K.LEARN_D].any() or host.blk[:, K.DELAYED].any())
        described = host_model = None
        if host.described is not None:
            described = tuple(a.put_all(views) for views in host.described)
            host_model = host.described[1]
        return CudaInputs(
            a.put(host.w),
            a.put(host.coef),
            a.put(host.blk),
            a.put(host.d_off),
            a.put(host.d_frac),
            a.put(host.d_bm),
            a.put(host.d_am),
            host.n_slots,
            np.dtype(dtype),
            learn,
            described,
            host_model,
        )

    @staticmethod
    def _net(plan: CudaPlan, inputs: CudaInputs) -> K.Net:
        """The kernels' view of the network of one call, on the device."""
        # every neuron on its population's coefficient row (per-neuron rows are refused in inputs())
        return kernel_net(
            plan.dev, plan.dev["tau_mem"][inputs.dtype.type], inputs, (plan.dev["pop_of"], plan.dev["hetero"])
        )

    def _data(self, data: SpikeData) -> tuple:
        a = self._arrays
        return (
            a.put(data.offsets.astype(np.int64)),
            a.put(data.steps.astype(np.int32)),
            a.put(data.channels.astype(np.int32)),
        )

    def forward(self, plan: CudaPlan, inputs: CudaInputs, data: SpikeData) -> dict:
        from ._cuda_kernels import kernels

        a, dtype = self._arrays, inputs.dtype
        if inputs.described is not None:
            return self._described_forward(plan, inputs, data)
        fwd = kernels(dtype == np.float64)[0]
        n_batch, n_steps, n_tot = len(data), plan.n_steps, int(plan.pop_off[-1])
        in_off, in_step, in_ch = self._data(data)
        v_all, i_all = a.empty((n_batch, n_tot), dtype), a.empty((n_batch, n_tot), dtype)
        a_all = a.empty((n_batch, n_tot), dtype)  # threshold adaptation
        ring = a.empty((n_batch, max(2 * inputs.n_slots * 2 * n_tot, 1)), dtype)  # the delay window
        while True:
            cap = plan.capacity
            res = dict(
                trace=a.zeros((n_batch, n_steps, plan.n_out), dtype),
                t_first=a.empty((n_batch, plan.n_out), dtype),
                counts=a.empty((n_batch, plan.n_hidden), dtype),
                rec_step=a.zeros((n_batch, cap), np.int32),
                rec_nrn=a.zeros((n_batch, cap), np.int32),
                rec_phi=a.zeros((n_batch, cap), dtype),
                rec_v=a.zeros((n_batch, cap), dtype),
                rec_i=a.zeros((n_batch, cap), dtype),
                n_rec=a.zeros((n_batch,), np.int64),
                overflow=a.zeros((n_batch,), np.int8),
            )
            a.launch(
                fwd,
                n_batch,
                plan.threads,
                K.Spikes(in_off, in_step, in_ch, n_steps),
                self._net(plan, inputs),
                (v_all, i_all, ring, a_all),
                K.Outputs(res["trace"], res["t_first"], res["counts"]),
                records(res),
            )
            if not a.any(res["overflow"]):
                res["_data"] = (in_off, in_step, in_ch)
                return res
            plan.grow_capacity()

    def _scratch(self, inputs: CudaInputs, n_batch: int, kind, which: int):
        """A worker row per sample of :mod:`._linear_kernels`' scratch (``which``: 0 forward, 1
        backward)."""
        net, model = inputs.described
        shapes = D.scratch_shapes(net, model, n_batch, inputs.dtype)[which]
        return kind(**{key: self._arrays.empty(*spec) for key, spec in shapes.items()})

    @staticmethod
    def _rows_dtype(inputs: CudaInputs):
        """The precision of the per-sample gradient rows: float64 for described models, as on
        the CPU; else the weights'."""
        return np.float64 if inputs.described is not None else inputs.dtype

    def _described_forward(self, plan: CudaPlan, inputs: CudaInputs, data: SpikeData) -> dict:
        from ._linear_cuda import THREADS, kernels

        a, dtype = self._arrays, inputs.dtype
        net, model = inputs.described
        n_batch, n_steps, S = len(data), plan.n_steps, int(model.u.shape[1])
        in_off, in_step, in_ch = self._data(data)
        scratch = self._scratch(inputs, n_batch, L.ForwardScratch, 0)
        while True:
            cap = plan.capacity
            res = dict(
                trace=a.zeros((n_batch, n_steps, plan.n_out), dtype),
                t_first=a.full((n_batch, plan.n_out), float(n_steps), dtype),
                counts=a.zeros((n_batch, plan.n_hidden), dtype),
                rec_step=a.zeros((n_batch, cap), np.int32),
                rec_nrn=a.zeros((n_batch, cap), np.int32),
                rec_phi=a.zeros((n_batch, cap), dtype),
                rec_x=a.zeros((n_batch, cap, S), dtype),
                n_rec=a.zeros((n_batch,), np.int64),
                overflow=a.zeros((n_batch,), np.int8),
            )
            a.launch(
                kernels(S)[0],
                -(-n_batch // THREADS),
                THREADS,
                K.Spikes(in_off, in_step, in_ch, n_steps),
                net,
                model,
                res["trace"],
                res["t_first"],
                res["counts"],
                L.Records(*(res[key] for key in D.RECORD_KEYS)),
                scratch,
            )
            if not a.any(res["overflow"]):
                res["_data"] = (in_off, in_step, in_ch)
                return res
            plan.grow_capacity()

    def group_offsets(self, plan: CudaPlan, n_batch: int) -> np.ndarray:
        """One group per sample: one thread block per sample writes its own gradient row, and
        the rows are summed in sample order."""
        return np.arange(n_batch + 1, dtype=np.int64)

    def backward(
        self,
        plan: CudaPlan,
        inputs: CudaInputs,
        data: SpikeData | None,
        forward: dict | None,
        g_trace,
        g_tfirst,
        g_counts,
        reduction=None,
    ) -> tuple[dict, dict, dict]:
        from ._cuda_kernels import kernels

        a, dtype = self._arrays, inputs.dtype
        _, bwd, sum_samples = kernels(dtype == np.float64)
        n_batch = 0 if data is None else len(data)
        if reduction is not None:
            off = np.asarray(reduction.local_offsets())
            if not np.array_equal(off, self.group_offsets(plan, n_batch)):
                raise ValueError(f"backward: the cuda backend's sample groups are single samples, got {off.tolist()}")
        acc = self._rows_dtype(inputs)
        if n_batch == 0:
            gw = a.zeros((0, plan.n_w), acc)
            gd = a.zeros((0, plan.n_w if inputs.learn_or_delayed else 1), acc)
            return self._sum_rows(plan, inputs, gw, gd, reduction)
        in_off, in_step, in_ch = forward.get("_data") or self._data(data)
        spikes = K.Spikes(in_off, in_step, in_ch, plan.n_steps)
        if inputs.described is not None:
            from ._linear_cuda import THREADS
            from ._linear_cuda import kernels as described_kernels

            gw = a.empty((n_batch, plan.n_w), acc)
            gd = a.empty((n_batch, plan.n_w if inputs.learn_or_delayed else 1), acc)
            a.launch(
                described_kernels(int(inputs.host_model.u.shape[1]))[1],
                -(-n_batch // THREADS),
                THREADS,
                spikes,
                *inputs.described,
                L.Records(*(forward[key] for key in D.RECORD_KEYS)),
                g_trace,
                g_tfirst,
                g_counts,
                gw,
                gd,
                grads := D.model_grads(inputs.host_model, n_batch, a.zeros),
                self._scratch(inputs, n_batch, L.BackwardScratch, 1),
            )
            if inputs.host_model.learn.any():  # the models' sums ride on the weights' rows
                cat = np.concatenate if a.sim else torch.cat
                gw = cat([gw, D.flatten_grads(grads, cat)], 1)
            return self._sum_rows(plan, inputs, gw, gd, reduction)
        n_tot = int(plan.pop_off[-1])
        lam = [a.empty((n_batch, n_tot), dtype) for _ in range(4)]
        hist = a.empty((n_batch, max(2 * inputs.n_slots * 2 * n_tot, 1)), dtype)  # the adjoints' window
        first = a.empty((n_batch, plan.n_out), np.int64)
        adapt = a.empty((n_batch, 3, n_tot), dtype)  # lam_a, its jumps, a replayed
        rec_a = a.empty((n_batch, max(forward["rec_step"].shape[1], 1)), dtype)
        gw = a.empty((n_batch, plan.n_w), dtype)
        gd = a.empty((n_batch, plan.n_w if inputs.learn_or_delayed else 1), dtype)
        a.launch(
            bwd,
            n_batch,
            plan.threads,
            spikes,
            self._net(plan, inputs),
            records(forward),
            K.Outputs(g_trace, g_tfirst, g_counts),
            (*lam, hist, first, adapt, rec_a),
            gw,
            gd,
        )
        return self._sum_rows(plan, inputs, gw, gd, reduction)

    def _sum_rows(self, plan: CudaPlan, inputs: CudaInputs, gw, gd, reduction) -> tuple[dict, dict, dict]:
        """The per-sample rows (after ``reduction.combine``: every process's) summed in order."""
        from ._cuda_kernels import kernels

        a, dtype = self._arrays, inputs.dtype
        acc = self._rows_dtype(inputs)
        sum_samples = kernels(acc == np.float64)[2]
        if reduction is not None:
            gw, gd = reduction.combine(gw, gd)
        block = 256
        n_cols = gw.shape[1]  # the weights, then any learning models' sums
        flat_w = a.zeros((n_cols,), acc)
        if len(gw):
            a.launch(sum_samples, -(-n_cols // block), block, gw, flat_w)
        flat_d = None
        if inputs.learn_or_delayed:
            flat_d = a.zeros((plan.n_w,), acc)
            if len(gd):
                a.launch(sum_samples, -(-plan.n_w // block), block, gd, flat_d)
        grads_m = {}
        if n_cols > plan.n_w:
            model = inputs.host_model
            extra = flat_w[plan.n_w :]
            extra = extra if a.sim else extra.cpu().numpy()
            grads_m = {
                p: self.to_torch(a.put(g))
                for p, g in D.model_gradients(model, *D.unflatten_grads(model, extra)).items()
            }
            flat_w = flat_w[: plan.n_w]
        finish = lambda g: self.to_torch(a.cast(g, dtype)).contiguous()  # noqa: E731
        grads_w, grads_d, grads_c = plan.connection_gradients(flat_w, flat_d, finish)
        return grads_w, grads_d, {**grads_c, **grads_m}

    def to_torch(self, x) -> torch.Tensor:
        return torch.from_numpy(x) if isinstance(x, np.ndarray) else x

    def from_torch(self, g: torch.Tensor, inputs: CudaInputs):
        if self._arrays.sim:
            return np.ascontiguousarray(g.detach().cpu().numpy(), dtype=inputs.dtype)
        return g.detach().to(self._arrays.device, _torch_dtype(inputs.dtype)).contiguous()


__all__ = ["CudaBackend", "CudaPlan", "CudaInputs", "CudaUnavailable", "cuda_problem", "simulator_enabled"]
