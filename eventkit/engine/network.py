"""EventpropNet: a recurrent spiking network whose forward and backward passes are the compiled
event-driven kernels, exposed to torch as one autograd Function."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, NamedTuple, Sequence

import numpy as np
import torch
from torch import nn

from ..data import SpikeData
from . import _kernels
from .neurons import LI, LIF, NeuronModel
from .readouts import ExpWeightedMeanV, Readout

DEFAULT_INIT = dict(ff_mean=0.03, ff_std=0.01, rec_mean=0.0, rec_std=0.02, out_mean=0.0, out_std=0.03)


class FakeQuant(NamedTuple):
    """What a fake-quantization function returns: the weights to simulate with, by parameter name,
    and threshold overrides by population index (hidden layers 0.., then the output)."""

    weights: dict
    thresholds: dict


class EngineOutput(NamedTuple):
    readout: torch.Tensor  # [B, n_out] (per_step: [B, T, n_out])
    counts: torch.Tensor  # [B, n_hidden_total] spikes per hidden neuron per sample
    trace: torch.Tensor  # [B, T, n_out] output voltage at grid times 1..T
    t_first: torch.Tensor  # [B, n_out] first output spike time in ms (n_steps * dt if none)


@dataclass
class Record:
    """Spikes of one simulated batch, for plots and inspection."""

    hidden: list  # per hidden layer: int arrays (sample, step, neuron) stacked as [n, 3]
    v_out: np.ndarray  # [B, T, n_out]
    output_spikes: np.ndarray  # [n, 3] (sample, step, neuron) of a spiking output population


class _Topology:
    """Flat arrays describing populations and dense blocks for the kernels."""

    def __init__(self, net: "EventpropNet"):
        sizes = list(net.hidden) + [net.n_out]
        self.pop_off = np.zeros(len(sizes) + 1, dtype=np.int64)
        np.cumsum(sizes, out=self.pop_off[1:])
        models = list(net.neurons) + [net.output]
        coefs = [m.coefficients(net.dt) for m in models]
        self.coef_rows = np.array(
            [[c.alpha, c.beta, c.kappa, c.b0, c.c, c.hm, c.hs, c.theta] for c in coefs],
            dtype=np.float64,
        )
        self.spiking = np.array([(2 if c.grid else 1) if c.spiking else 0 for c in coefs], dtype=np.int8)
        self.tau_mem = np.array([c.tau_mem for c in coefs], dtype=np.float64)
        blocks, names = [], []  # (pre, post, n_pre, n_post)
        pre_pop, pre_n = -1, net.n_in
        for layer, n in enumerate(net.hidden):
            blocks.append((pre_pop, layer, pre_n, n))
            names.append(f"ff{layer}")
            if net.recurrent[layer]:
                blocks.append((layer, layer, n, n))
                names.append(f"rec{layer}")
            pre_pop, pre_n = layer, n
        blocks.append((pre_pop, len(net.hidden), pre_n, net.n_out))
        names.append("out")
        self.names = names
        self.shapes = [(b[3], b[2]) for b in blocks]  # parameter shapes (n_post, n_pre)
        self.blk = np.zeros((len(blocks), 4), dtype=np.int64)
        off = 0
        for k, (pre, post, n_pre, n_post) in enumerate(blocks):
            self.blk[k] = (pre, post, off, n_post)
            off += n_pre * n_post
        self.n_w = off
        n_pop = len(sizes)
        outgoing = [[k for k, b in enumerate(blocks) if b[0] == p] for p in range(n_pop)]
        self.out_start = np.zeros(n_pop + 1, dtype=np.int64)
        np.cumsum([len(o) for o in outgoing], out=self.out_start[1:])
        self.out_blk = np.array([k for o in outgoing for k in o], dtype=np.int64)
        self.in_blk = np.array([k for k, b in enumerate(blocks) if b[0] == -1], dtype=np.int64)
        self.n_hidden = int(self.pop_off[-2])


class EventpropNet(nn.Module):
    """Input -> hidden LIF layers (optionally recurrent) -> output population, trained by Eventprop.

    Parameters are ``ff0, rec0, ff1, ..., out`` of shape (n_post, n_pre). Calling the module on a
    :class:`SpikeData` batch returns an :class:`EngineOutput`; ``loss.backward()`` fills exact
    Eventprop gradients of the simulated network.
    """

    def __init__(
        self,
        n_in: int,
        n_out: int,
        hidden: int | Sequence[int] = 256,
        *,
        recurrent: bool | Sequence[bool] = True,
        neuron: NeuronModel | Sequence[NeuronModel] = LIF(),
        output: NeuronModel = LI(),
        readout: Readout = ExpWeightedMeanV(),
        dt: float = 1.0,
        n_steps: int = 1000,
        init: dict | None = None,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
        max_spikes_per_sample: int = 2_000_000,
        n_groups: int = 8,
    ):
        super().__init__()
        _positive_int("n_in", n_in)
        _positive_int("n_out", n_out)
        hidden = [hidden] if isinstance(hidden, (int, np.integer)) else list(hidden)
        for k, n in enumerate(hidden):
            _positive_int(f"hidden[{k}]", n)
        recurrent = [recurrent] * len(hidden) if isinstance(recurrent, bool) else list(recurrent)
        if len(recurrent) != len(hidden):
            raise ValueError(f"recurrent: expected {len(hidden)} flags (one per hidden layer), got {len(recurrent)}")
        neurons = [neuron] * len(hidden) if isinstance(neuron, NeuronModel) else list(neuron)
        if len(neurons) != len(hidden) or not all(isinstance(m, NeuronModel) for m in neurons):
            raise ValueError("neuron: give one NeuronModel, or one per hidden layer")
        for m in neurons:
            if not m.spiking:
                raise ValueError(f"neuron: hidden layers need a spiking model, {m.name!r} does not spike")
        if not isinstance(output, NeuronModel):
            raise ValueError("output: must be a NeuronModel such as LI() or LIF()")
        if not isinstance(readout, Readout):
            raise ValueError("readout: must be a Readout such as ExpWeightedMeanV()")
        if readout.needs_output_spikes and not output.spiking:
            raise ValueError(f"readout {readout.name!r} needs a spiking output population (output=LIF(...))")
        if not (isinstance(dt, (int, float)) and math.isfinite(dt) and dt > 0):
            raise ValueError(f"dt must be a positive number of ms, got {dt!r}")
        _positive_int("n_steps", n_steps)
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        _positive_int("max_spikes_per_sample", max_spikes_per_sample)
        _positive_int("n_groups", n_groups)
        self.n_in, self.n_out, self.hidden = int(n_in), int(n_out), [int(n) for n in hidden]
        self.recurrent = [bool(r) for r in recurrent]
        self.neurons, self.output, self.readout = neurons, output, readout
        self.dt, self.n_steps, self.dtype = float(dt), int(n_steps), dtype
        self.max_spikes_per_sample = int(max_spikes_per_sample)
        self.n_groups = int(n_groups)
        self._topo = _Topology(self)  # validates time constants against dt
        self._capacity = min(self.max_spikes_per_sample, max(4096, 8 * self._topo.n_hidden))
        self._fake_quant = None
        self._readout_in_loop = None
        self._binary_input = False
        init = {**DEFAULT_INIT, **(init or {})}
        unknown = set(init) - set(DEFAULT_INIT)
        if unknown:
            raise ValueError(f"init: unknown keys {sorted(unknown)}; known: {sorted(DEFAULT_INIT)}")
        for name, shape in zip(self._topo.names, self._topo.shapes):
            kind = "ff" if name.startswith("ff") else "rec" if name.startswith("rec") else "out"
            mean, std = init[f"{kind}_mean"], init[f"{kind}_std"]
            if std < 0:
                raise ValueError(f"init: {kind}_std must be >= 0, got {std}")
            w = torch.randn(shape, generator=generator, dtype=torch.float64) * std + mean
            self.register_parameter(name, nn.Parameter(w.to(dtype)))

    # ------------------------------------------------------------------ public
    @property
    def n_hidden_total(self) -> int:
        return self._topo.n_hidden

    def forward(self, data: SpikeData) -> EngineOutput:
        data = self._check_data(data)
        weights = [getattr(self, n) for n in self._topo.names]
        trace, t_first, counts = _EventpropFunction.apply(self, data, *weights)
        readout = self.readout(trace, t_first, self.dt)
        if self._readout_in_loop is not None:
            readout = self._hardware_readout(data, readout)
        return EngineOutput(readout, counts, trace, t_first)

    def predict(self, readout: torch.Tensor) -> torch.Tensor:
        return self.readout.predict(readout)

    @torch.no_grad()
    def record(self, data: SpikeData) -> Record:
        """Simulate ``data`` and return every hidden spike (for rasters) and the output trace."""
        data = self._check_data(data)
        res = self._run_forward(data, *self._kernel_inputs())
        n_rec, steps, nrn = res["n_rec"], res["rec_step"], res["rec_nrn"]
        sample = np.concatenate([np.full(n, b, dtype=np.int64) for b, n in enumerate(n_rec)]) if len(n_rec) else np.zeros(0, np.int64)
        step = np.concatenate([steps[b, :n] for b, n in enumerate(n_rec)]).astype(np.int64) if len(n_rec) else np.zeros(0, np.int64)
        neuron = np.concatenate([nrn[b, :n] for b, n in enumerate(n_rec)]).astype(np.int64) if len(n_rec) else np.zeros(0, np.int64)
        off = self._topo.pop_off
        layers = []
        for p in range(len(off) - 1):
            sel = (neuron >= off[p]) & (neuron < off[p + 1])
            layers.append(np.stack([sample[sel], step[sel], neuron[sel] - off[p]], axis=1))
        return Record(hidden=layers[:-1], v_out=res["trace"], output_spikes=layers[-1])

    def export(self) -> dict:
        """Weights and model constants as plain numpy/Python (for hardware targets)."""
        layers = []
        for layer, n in enumerate(self.hidden):
            layers.append(dict(
                w_ff=getattr(self, f"ff{layer}").detach().cpu().numpy().astype(np.float64),
                w_rec=getattr(self, f"rec{layer}").detach().cpu().numpy().astype(np.float64) if self.recurrent[layer] else None,
                neuron=self._describe_neuron(self.neurons[layer]),
            ))
        return dict(
            dt=self.dt, n_steps=self.n_steps, n_in=self.n_in, n_out=self.n_out, layers=layers,
            output=dict(w=self.out.detach().cpu().numpy().astype(np.float64),
                        neuron=self._describe_neuron(self.output)),
            readout=self.readout.describe(),
        )

    # ----------------------------------------------------------------- private
    def _describe_neuron(self, model: NeuronModel) -> dict:
        info = model.describe()
        if hasattr(model, "decays"):  # integer-decay (chip) models: the exact decays in use
            info["i_decay"], info["v_decay"] = model.decays(self.dt)
        if hasattr(model, "gain"):  # float input gain the chip weights must carry
            info["gain"] = model.gain(self.dt)
        return info

    def _check_data(self, data: SpikeData) -> SpikeData:
        """``data`` validated against the network, as the network sees it (binary if set)."""
        if not isinstance(data, SpikeData):
            raise ValueError(f"data: expected eventkit.data.SpikeData, got {type(data).__name__}")
        if data.n_channels != self.n_in:
            raise ValueError(f"data: n_channels={data.n_channels} but the network has n_in={self.n_in}")
        if abs(data.dt - self.dt) > 1e-9 * self.dt:
            raise ValueError(f"data: dt={data.dt} ms but the network runs at dt={self.dt} ms")
        if len(data) == 0:
            raise ValueError("data: the batch is empty")
        if data.n_spikes and (data.steps.min() < 0 or data.steps.max() >= self.n_steps):
            raise ValueError(
                f"data: spike steps must lie in [0, n_steps={self.n_steps}); found "
                f"[{data.steps.min()}, {data.steps.max()}]"
            )
        data.validate("data")
        return data.binary() if self._binary_input else data

    def set_binary_input(self, binary: bool) -> None:
        """Treat input spikes as binary events: a (step, channel) pair repeated within a sample
        counts once (:meth:`SpikeData.binary`), as on hardware whose inputs are 0/1 per step.
        Off by default: every occurrence is one spike."""
        if not isinstance(binary, bool):
            raise ValueError(f"set_binary_input: expected True or False, got {binary!r}")
        self._binary_input = binary

    @property
    def binary_input(self) -> bool:
        """Whether repeated (step, channel) input spikes count once (:meth:`set_binary_input`)."""
        return self._binary_input

    def set_fake_quantization(self, fn: Callable[[dict], "FakeQuant"] | None) -> None:
        """Run forward passes with the weights and thresholds ``fn`` returns (e.g. the 8-bit values a
        chip will use) while gradients update the float parameters unchanged (straight-through).
        ``fn`` receives ``{name: float weights (n_post, n_pre) ndarray}``; ``None`` switches it off."""
        if fn is not None and not callable(fn):
            raise ValueError("set_fake_quantization: expected a callable or None")
        self._fake_quant = fn

    def set_readout_in_the_loop(self, fn: Callable[[SpikeData], np.ndarray] | None) -> None:
        """Train with another system's readout in the loop (e.g. a bit-exact chip emulator).

        The forward pass returns ``fn(data)`` (an array [batch, n_out] in the units of this
        network's readout) as the readout, and the backward pass sends d loss / d readout,
        evaluated at those values, through this network's own Eventprop gradient
        (straight-through). Training losses, validation and model selection thus measure what the
        other system computes. ``None`` switches it off (and gives the network's own readout)."""
        if fn is not None and not callable(fn):
            raise ValueError("set_readout_in_the_loop: expected a callable or None")
        self._readout_in_loop = fn

    @property
    def readout_in_the_loop(self) -> Callable[[SpikeData], np.ndarray] | None:
        """The callable set by :meth:`set_readout_in_the_loop` (or None)."""
        return self._readout_in_loop

    def _hardware_readout(self, data: SpikeData, readout: torch.Tensor) -> torch.Tensor:
        hw = torch.as_tensor(np.asarray(self._readout_in_loop(data)), dtype=readout.dtype)
        if hw.shape != readout.shape:
            raise ValueError(f"readout in the loop: the callable returned shape {tuple(hw.shape)}, "
                             f"the network's readout has shape {tuple(readout.shape)}")
        if not torch.isfinite(hw).all():
            raise ValueError("readout in the loop: the callable returned NaN or inf")
        return readout + (hw - readout).detach()

    def _effective(self) -> tuple[dict, dict]:
        weights = {n: getattr(self, n).detach().cpu().numpy() for n in self._topo.names}
        fn = self._fake_quant
        if fn is None:
            return weights, {}
        fq = fn(weights)
        missing = set(weights) - set(fq.weights)
        if missing:
            raise ValueError(f"fake quantization returned no weights for {sorted(missing)}")
        return fq.weights, dict(fq.thresholds)

    def _kernel_inputs(self) -> tuple[np.ndarray, np.ndarray]:
        """(flat weights, coefficient rows) the kernels run with: the parameters, or what the
        fake quantization makes of them (computed once per call)."""
        np_dtype = np.float32 if self.dtype == torch.float32 else np.float64
        weights, thresholds = self._effective()
        parts = [np.asarray(weights[n]).T.reshape(-1) for n in self._topo.names]
        w = np.ascontiguousarray(np.concatenate(parts), dtype=np_dtype)
        coef = self._topo.coef_rows.copy()
        for pop, theta in thresholds.items():
            coef[pop, 7] = theta
        return w, coef.astype(np_dtype)

    def _group_buffer(self, n_groups: int, dtype) -> np.ndarray:
        """The backward pass's per-group gradient accumulators, kept between calls (the kernel
        overwrites them), so that each step does not fault in fresh pages."""
        buf = getattr(self, "_gw_buffer", None)
        if buf is None or buf.shape != (n_groups, self._topo.n_w) or buf.dtype != dtype:
            buf = np.empty((n_groups, self._topo.n_w), dtype=dtype)
            self._gw_buffer = buf
        return buf

    def _run_forward(self, data: SpikeData, w: np.ndarray, coef: np.ndarray) -> dict:
        topo, dtype = self._topo, w.dtype
        n_batch = len(data)
        while True:
            cap = self._capacity
            res = dict(
                trace=np.zeros((n_batch, self.n_steps, self.n_out), dtype=dtype),
                t_first=np.full((n_batch, self.n_out), float(self.n_steps), dtype=dtype),
                counts=np.zeros((n_batch, topo.n_hidden), dtype=dtype),
                rec_step=np.zeros((n_batch, cap), dtype=np.int32),
                rec_nrn=np.zeros((n_batch, cap), dtype=np.int32),
                rec_phi=np.zeros((n_batch, cap), dtype=dtype),
                rec_v=np.zeros((n_batch, cap), dtype=dtype),
                rec_i=np.zeros((n_batch, cap), dtype=dtype),
                n_rec=np.zeros(n_batch, dtype=np.int64),
                overflow=np.zeros(n_batch, dtype=np.int8),
            )
            _kernels.forward(
                data.offsets, data.steps, data.channels, self.n_steps, topo.pop_off, coef,
                topo.spiking, topo.blk, topo.out_start, topo.out_blk, topo.in_blk, w,
                res["trace"], res["t_first"], res["counts"], res["rec_step"], res["rec_nrn"],
                res["rec_phi"], res["rec_v"], res["rec_i"], res["n_rec"], res["overflow"],
            )
            if not res["overflow"].any():
                return res
            if cap >= self.max_spikes_per_sample:
                raise RuntimeError(
                    f"a sample produced more than max_spikes_per_sample={self.max_spikes_per_sample} "
                    "spikes; raise max_spikes_per_sample (memory grows with it) or reduce activity "
                    "(weights, input rate, regulariser)"
                )
            self._capacity = min(self.max_spikes_per_sample, 2 * cap)


class _EventpropFunction(torch.autograd.Function):
    """One autograd node for the whole simulation: outputs (trace, t_first, counts)."""

    @staticmethod
    def forward(ctx, net: EventpropNet, data: SpikeData, *weights):
        w, coef = net._kernel_inputs()
        res = net._run_forward(data, w, coef)
        ctx.net, ctx.data, ctx.w, ctx.res, ctx.coef = net, data, w, res, coef
        dtype = net.dtype
        t_first = torch.from_numpy(res["t_first"]).to(dtype) * net.dt
        counts = torch.from_numpy(res["counts"]).to(dtype)
        return torch.from_numpy(res["trace"]).to(dtype), t_first, counts

    @staticmethod
    def backward(ctx, g_trace, g_tfirst, g_counts):
        net, data, w, res = ctx.net, ctx.data, ctx.w, ctx.res
        topo, np_dtype = net._topo, w.dtype
        n_batch = len(data)

        def as_np(g, shape):
            if g is None:
                return np.zeros(shape, dtype=np_dtype)
            return np.ascontiguousarray(g.detach().cpu().numpy(), dtype=np_dtype)

        g_trace_np = as_np(g_trace, (n_batch, net.n_steps, net.n_out))
        # t_first is returned in ms = (n + phi) * dt: the kernel's g is per unit of phi
        g_tfirst_np = as_np(g_tfirst, (n_batch, net.n_out)) * np_dtype.type(net.dt)
        g_counts_np = as_np(g_counts, (n_batch, topo.n_hidden))
        n_groups = min(net.n_groups, n_batch)
        gw = net._group_buffer(n_groups, np_dtype)
        _kernels.backward(
            data.offsets, data.steps, data.channels, net.n_steps, topo.pop_off,
            ctx.coef, topo.spiking, topo.tau_mem.astype(np_dtype), topo.blk,
            topo.out_start, topo.out_blk, topo.in_blk, w, res["rec_step"], res["rec_nrn"],
            res["rec_phi"], res["rec_v"], res["rec_i"], res["n_rec"], g_trace_np, g_tfirst_np,
            g_counts_np, gw,
        )
        flat = np.empty(topo.n_w, dtype=np_dtype)
        _kernels.sum_groups(gw, flat)
        grads = []
        for k, shape in enumerate(topo.shapes):
            off = topo.blk[k, 2]
            n_post, n_pre = shape
            g = flat[off : off + n_pre * n_post].reshape(n_pre, n_post).T
            grads.append(torch.from_numpy(np.ascontiguousarray(g)).to(net.dtype))
        ctx.res = None
        return (None, None, *grads)


def spike_count_regularizer(counts: torch.Tensor, strength: float, nu: float,
                            strength_lower: float | None = None) -> torch.Tensor:
    """Per-neuron spike-count regulariser of the Eventprop papers.

    ``C_n`` = spikes of hidden neuron n summed over the batch; target ``nu * B``. Loss
    ``strength/2 * sum_n (C_n - nu B)^2`` above the target and ``strength_lower/2 * ...`` below it
    (``strength_lower`` defaults to ``strength``). Spike counts are piecewise constant, so its
    gradient enters the backward pass the way mlGeNN does it: as a kick ``tau_mem * dL/dC`` to the
    membrane adjoint at every spike of the neuron.
    """
    if strength < 0 or (strength_lower is not None and strength_lower < 0):
        raise ValueError("spike_count_regularizer: strengths must be >= 0")
    if strength == 0 and not strength_lower:
        return counts.sum() * 0.0
    lower = strength if strength_lower is None else strength_lower
    excess = counts.sum(dim=0) - nu * counts.shape[0]
    weight = torch.where(excess > 0, torch.full_like(excess, strength), torch.full_like(excess, lower))
    return 0.5 * (weight * excess * excess).sum()


def _positive_int(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
