"""EventpropNet: a layered spiking network (typed :class:`~eventkit.engine.topology.Topology`)
whose forward and backward passes run on an engine backend, exposed to torch as one autograd
Function (:mod:`eventkit.engine.autograd`)."""

from __future__ import annotations

import contextlib
import itertools
import math
from dataclasses import dataclass, replace
from types import SimpleNamespace
from typing import Callable, Iterator, Mapping, NamedTuple, Sequence, TypedDict

import numpy as np
import torch
from torch import nn

from ..data.spikes import SpikeData
from .autograd import EventpropFunction, parameter_gradients
from .backends import get_backend
from .backends.cpu import coefficient_row
from .dynamics import check_learnable_description, description_jacobian
from .neurons import LI, LIF, Described, NeuronModel
from .readouts import ExpWeightedMeanV, Readout
from .topology import Delay, Topology, parse_delays

DEFAULT_INIT = dict(ff_mean=0.03, ff_std=0.01, rec_mean=0.0, rec_std=0.02, out_mean=0.0, out_std=0.03)


class FakeQuant(NamedTuple):
    """What a fake-quantization function returns: the weights to simulate with, by connection
    name, and threshold overrides by population index (hidden layers 0.., then the output)."""

    weights: dict
    thresholds: dict


@dataclass(frozen=True)
class Simulation:
    """How a target changes the simulation, without changing the parameters: the ONE hook
    (:attr:`EventpropNet.simulation`) through which e.g. the Loihi 2 target makes training see
    what its chip computes. Gradients always go to the float parameters (straight-through).

    binary_input: a (step, channel) input pair repeated within a sample counts once
        (:meth:`SpikeData.binary`), as on hardware whose inputs are 0/1 per step.
    fake_quantization: ``fn({connection name: float weights (n_post, n_pre)}) -> FakeQuant``;
        forward passes use the weights and thresholds it returns (e.g. the chip's 8-bit values).
    readout_in_the_loop: ``fn(data) -> [batch, n_out] array`` in the units of the network's
        readout (e.g. a bit-exact chip emulator). The forward pass returns it as the readout and
        the backward pass sends d loss / d readout, evaluated there, through the network's own
        Eventprop gradient; validation and model selection then measure the other system.
    """

    binary_input: bool = False
    fake_quantization: Callable[[dict], FakeQuant] | None = None
    readout_in_the_loop: Callable[[SpikeData], np.ndarray] | None = None

    def __post_init__(self):
        if not isinstance(self.binary_input, bool):
            raise ValueError(f"Simulation.binary_input: expected True or False, got {self.binary_input!r}")
        for key in ("fake_quantization", "readout_in_the_loop"):
            fn = getattr(self, key)
            if fn is not None and not callable(fn):
                raise ValueError(f"Simulation.{key}: expected a callable or None, got {fn!r}")


class ParamGroup(TypedDict, total=False):
    """A torch.optim parameter group as :meth:`EventpropNet.param_groups` makes it (torch keeps
    groups as dicts, and checkpoints store them as such). ``fixed_lr`` true: the group trains at
    its own constant ``lr`` (the learnable delays, ``network.delay_lr``), which lr schedules leave
    alone; see :func:`scheduled`."""

    params: list[nn.Parameter]
    lr: float
    fixed_lr: bool


def scheduled(group: Mapping) -> bool:
    """Whether an lr schedule sets this optimizer parameter group's lr: every group but a
    :class:`ParamGroup` with ``fixed_lr``."""
    return not group.get("fixed_lr", False)


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


class EventpropNet(nn.Module):
    """Input -> hidden LIF layers (optionally recurrent) -> output population, trained by Eventprop.

    The connections are ``net.topology.connections``; each owns the weight parameter named like
    the connection (``ff0, rec0, ff1, ..., out``, shape (n_post, n_pre)) and, when it has delays
    (``delays={"ff": Delay(...)}`` or the same as plain dicts, see
    :func:`~eventkit.engine.topology.parse_delays`), the delay parameter ``<name>_delay`` in ms.
    Calling the module on a :class:`SpikeData` batch returns an :class:`EngineOutput`;
    ``loss.backward()`` fills the Eventprop gradients of the simulated network: exact for losses
    of the voltage trace and spike times (except ``max_v``'s continuous limit, the regulariser's
    surrogate kick and straight-through settings; docs/engine.md, "What is exact").
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
        delays: Mapping[str, Delay | Mapping] | None = None,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
        max_spikes_per_sample: int = 2_000_000,
        n_groups: int = 8,
        backend: str = "cpu",
        learn_tau: Mapping[str, Sequence[float]] | None = None,
        tau_per_neuron: bool = False,
        tau_init: str = "constant",
        tau_gamma_shape: float = 3.0,
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
        self._models, self.output, self.readout = list(neurons), output, readout
        self.dt, self.n_steps, self.dtype = float(dt), int(n_steps), dtype
        self.max_spikes_per_sample = int(max_spikes_per_sample)
        self.n_groups = int(n_groups)
        self._delays = parse_delays(delays)
        self.learn_tau = parse_learn_tau(learn_tau, self._models, float(dt))
        self.backend = get_backend(backend)
        if self.learn_tau and not self.backend.learns_closed_form_constants:
            self._models = neurons = by_description_to_learn(
                neurons, output, self.learn_tau, dt, tau_per_neuron, self.backend.name
            )
        self._topology = Topology.build(n_in, n_out, self.hidden, self.recurrent, neurons, output, self._delays)
        # validates time constants against dt and the delay buffers' size
        self.plan = self.backend.plan(
            self._topology, self.dt, self.n_steps, max_spikes=self.max_spikes_per_sample, n_groups=self.n_groups
        )
        self._simulation = Simulation()
        self._reduction = None  # see reducing_gradients
        init = {**DEFAULT_INIT, **(init or {})}
        unknown = set(init) - set(DEFAULT_INIT)
        if unknown:
            raise ValueError(f"init: unknown keys {sorted(unknown)}; known: {sorted(DEFAULT_INIT)}")
        for conn in self._topology.connections:
            mean, std = init[f"{conn.kind}_mean"], init[f"{conn.kind}_std"]
            if std < 0:
                raise ValueError(f"init: {conn.kind}_std must be >= 0, got {std}")
            w = torch.randn(conn.shape, generator=generator, dtype=torch.float64) * std + mean
            self.register_parameter(conn.name, nn.Parameter(w.to(dtype)))
        for conn in self._topology.delayed:  # after every weight: a net without delays is unchanged
            lo, hi = conn.delay.init
            d = lo + (hi - lo) * torch.rand(conn.shape, generator=generator, dtype=torch.float64)
            self.register_parameter(conn.delay_name, nn.Parameter(d.to(dtype), requires_grad=conn.delay.learn))
        self.tau_per_neuron = check_tau_shape(self.learn_tau, tau_per_neuron, tau_init, tau_gamma_shape)
        for k, model in enumerate(self._models):  # learnable time constants: one per hidden layer, or per neuron
            for key, rng in self.learn_tau.items():
                value = float(getattr(model, key))
                tau = (
                    initial_time_constants(tau_init, value, rng, self.hidden[k], tau_gamma_shape, generator)
                    if self.tau_per_neuron
                    else torch.tensor(value, dtype=torch.float64)
                )
                self.register_parameter(f"{key}{k}", nn.Parameter(tau.to(dtype)))
        if self.learn_tau and self.plan.described is not None:  # the description-driven kernels learn them
            if self.tau_per_neuron:
                raise ValueError(
                    f"learn_tau: a network of models given by their description ({self._described_names()}) learns "
                    "its models' constants per layer so far. Fix: tau_per_neuron=false, or drop learn_tau"
                )
            for model in self._models:
                check_learnable_description(model, self.learn_tau, "learn_tau")
        if self.tau_per_neuron:
            for model in self._models:
                check_per_neuron_model(model, self.learn_tau, self.dt)

    def _described_names(self) -> str:
        return ", ".join(
            sorted({p.model.name for p in self._topology.populations if p.model.coefficients(self.dt) is None})
        )

    # ------------------------------------------------------------------ public
    @property
    def neurons(self) -> list[NeuronModel]:
        """The hidden layers' neuron models, with their learned time constants where
        ``learn_tau`` makes them parameters of the layer (with ``tau_per_neuron`` the models keep
        their declared values; each neuron's are :meth:`time_constants`)."""
        if not self.learn_tau or self.tau_per_neuron:
            return list(self._models)
        return [
            replace(m, **{key: float(getattr(self, f"{key}{k}").detach()) for key in self.learn_tau})
            for k, m in enumerate(self._models)
        ]

    @property
    def topology(self) -> Topology:
        """The typed topology; its populations carry the current (learned) neuron models."""
        if self.learn_tau:
            models = tuple(self.neurons)
            if tuple(p.model for p in self._topology.hidden) != models:
                t = self._topology
                self._topology = Topology.build(
                    t.input.size, t.output.size, self.hidden, self.recurrent, models, self.output, self._delays
                )
        return self._topology

    def time_constants(self) -> list[dict[str, np.ndarray]]:
        """Every hidden neuron's time constants (ms, float64), per hidden layer: each learnable
        time constant of its model (``NeuronModel.learnable``) -> one value per neuron, whether
        the value is the model's, learned per layer or learned per neuron."""
        out = []
        for k, model in enumerate(self._models):
            layer = {}
            for key in model.learnable:
                if key in self.learn_tau:
                    value = getattr(self, f"{key}{k}").detach().cpu().numpy().astype(np.float64)
                else:
                    value = np.asarray(float(getattr(model, key)))
                layer[key] = np.broadcast_to(value, (self.hidden[k],)).copy()
            out.append(layer)
        return out

    def time_constant_parameters(self) -> list[nn.Parameter]:
        """The learnable time constants (ms): per hidden layer and ``learn_tau`` key, a scalar, or
        one value per neuron (``tau_per_neuron``)."""
        return [getattr(self, f"{key}{k}") for k in range(len(self._models)) for key in self.learn_tau]

    @property
    def n_hidden_total(self) -> int:
        return self.topology.n_hidden_total

    @property
    def simulation(self) -> Simulation:
        """How the network is simulated (see :class:`Simulation`); a target sets it."""
        return self._simulation

    @simulation.setter
    def simulation(self, sim: Simulation) -> None:
        if not isinstance(sim, Simulation):
            raise ValueError(f"simulation: expected eventkit.engine.Simulation, got {type(sim).__name__}")
        self._simulation = sim

    @contextlib.contextmanager
    def simulating(self, **changes) -> Iterator["EventpropNet"]:
        """Temporarily change fields of :attr:`simulation`, e.g. ``with net.simulating(
        readout_in_the_loop=None): ...`` for the float network's own readout."""
        before = self._simulation
        self.simulation = replace(before, **changes)
        try:
            yield self
        finally:
            self._simulation = before

    @contextlib.contextmanager
    def reducing_gradients(self, reduction) -> Iterator["EventpropNet"]:
        """Forward passes inside this block sum their gradients with ``reduction`` (a
        :class:`~eventkit.engine.backends.GroupReduction`): the batch's sample groups are spread
        over processes and summed in one order, whatever the number of processes."""
        before = self._reduction
        self._reduction = reduction
        try:
            yield self
        finally:
            self._reduction = before

    def group_offsets(self, n_batch: int) -> np.ndarray:
        """The sample groups of a batch of ``n_batch`` (boundaries, see the backend's
        ``group_offsets``): its gradient is the sum of theirs, group 0 first."""
        return self.backend.group_offsets(self.plan, int(n_batch))

    def backward_without_samples(self, reduction) -> None:
        """For a process whose share of a batch is empty: take part in ``reduction``'s
        combination with no groups and add the resulting (whole batch's) gradients to the
        parameters' ``.grad``, as ``backward()`` does on the processes that have samples."""
        names, params = self._gradient_targets()
        grads = self.backend.backward(self.plan, self._kernel_inputs(), None, None, None, None, None, reduction)
        targets = [(p.dtype, p.device) for p in params]
        rows, row_grads = [], []  # coefficient rows: expressions of the time constants
        for (kind, _), p, g in zip(names, params, parameter_gradients(self.backend, names, targets, grads)):
            if kind == "c":
                rows.append(p)
                row_grads.append(g)
            elif p.requires_grad:
                p.grad = g.clone() if p.grad is None else p.grad + g
        if rows:
            torch.autograd.backward(rows, row_grads)  # into the time constants' .grad

    def weight_parameters(self) -> list[nn.Parameter]:
        return [getattr(self, c.name) for c in self.topology.connections]

    def delay_parameters(self) -> list[nn.Parameter]:
        """The learnable delay parameters (ms)."""
        return [getattr(self, c.delay_name) for c in self.topology.delayed if c.delay.learn]

    def delays_ms(self) -> dict[str, np.ndarray]:
        """Each delayed connection's delays (ms, float64, shape (n_post, n_pre)) by connection
        name, as the parameters hold them."""
        return {
            c.name: getattr(self, c.delay_name).detach().cpu().numpy().astype(np.float64) for c in self.topology.delayed
        }

    def param_groups(self, delay_lr: float | None = None, tau_lr: float | None = None) -> list[ParamGroup]:
        """torch.optim parameter groups: the weights, and the learnable delays and time constants,
        each with their own learning rate (ms per update; ``fixed_lr``, so that lr schedules leave
        them alone)."""
        groups = [ParamGroup(params=self.weight_parameters())]
        for what, params, lr in (
            ("network.delay_lr", self.delay_parameters(), delay_lr),
            ("network.tau_lr", self.time_constant_parameters(), tau_lr),
        ):
            if params:
                if lr is None or not lr > 0:
                    raise ValueError(f"{what} must be > 0 to learn these parameters, got {lr!r}")
                groups.append(ParamGroup(params=params, lr=float(lr), fixed_lr=True))
        return groups

    @torch.no_grad()
    def clamp_delays(self) -> None:
        """Keep every delay within [0, max] (call after each optimizer step)."""
        for conn in self._topology.delayed:
            getattr(self, conn.delay_name).clamp_(0.0, conn.delay.max)

    @torch.no_grad()
    def clamp_parameters(self) -> None:
        """Keep every delay within [0, max] and every learnable time constant within its
        ``learn_tau`` range (call after each optimizer step)."""
        self.clamp_delays()
        for k in range(len(self._models)):
            for key, (lo, hi) in self.learn_tau.items():
                getattr(self, f"{key}{k}").clamp_(lo, hi)

    def forward(self, data: SpikeData) -> EngineOutput:
        data = self._check_data(data)
        names, params = self._gradient_targets()
        inputs = self._kernel_inputs()
        trace, t_first, counts = EventpropFunction.apply(
            self.backend, self.plan, inputs, data, names, self._reduction, *params
        )
        readout = self.readout(trace, t_first, self.dt)
        if self._simulation.readout_in_the_loop is not None:
            readout = self._hardware_readout(data, readout)
        return EngineOutput(readout, counts, trace, t_first)

    def predict(self, readout: torch.Tensor) -> torch.Tensor:
        return self.readout.predict(readout)

    @torch.no_grad()
    def predictions(self, data: SpikeData, batch_size: int = 512) -> np.ndarray:
        """The predicted class (int64) of every sample of ``data``, simulated in batches of
        ``batch_size`` without building a graph."""
        preds = [
            self.predict(self(data.subset(np.arange(a, min(a + batch_size, len(data))))).readout).cpu().numpy()
            for a in range(0, len(data), batch_size)
        ]
        return np.concatenate(preds).astype(np.int64) if preds else np.zeros(0, np.int64)

    @torch.no_grad()
    def simulate(self, data: SpikeData) -> dict:
        """The backend's raw forward result for ``data`` (spike records ``rec_step``,
        ``rec_nrn``, ``n_rec`` ..., ``trace``, ``counts``) as numpy arrays, without building a
        graph."""
        res = self.backend.forward(self.plan, self._kernel_inputs(), self._check_data(data))
        return {k: self.backend.to_torch(v).cpu().numpy() for k, v in res.items() if not k.startswith("_")}

    @torch.no_grad()
    def record(self, data: SpikeData) -> Record:
        """Simulate ``data`` and return every hidden spike (for rasters) and the output trace."""
        res = self.simulate(data)
        n_rec, steps, nrn = res["n_rec"], res["rec_step"], res["rec_nrn"]
        sample = (
            np.concatenate([np.full(n, b, dtype=np.int64) for b, n in enumerate(n_rec)])
            if len(n_rec)
            else np.zeros(0, np.int64)
        )
        step = (
            np.concatenate([steps[b, :n] for b, n in enumerate(n_rec)]).astype(np.int64)
            if len(n_rec)
            else np.zeros(0, np.int64)
        )
        neuron = (
            np.concatenate([nrn[b, :n] for b, n in enumerate(n_rec)]).astype(np.int64)
            if len(n_rec)
            else np.zeros(0, np.int64)
        )
        off = self.plan.pop_off
        layers = []
        for p in range(len(off) - 1):
            sel = (neuron >= off[p]) & (neuron < off[p + 1])
            layers.append(np.stack([sample[sel], step[sel], neuron[sel] - off[p]], axis=1))
        return Record(hidden=layers[:-1], v_out=res["trace"], output_spikes=layers[-1])

    def effective_parameters(self) -> tuple[dict, dict, dict]:
        """(weights, delays in ms, threshold overrides) the kernels simulate with: the parameters,
        or what :attr:`Simulation.fake_quantization` makes of them."""
        weights = {c.name: getattr(self, c.name).detach().cpu().numpy() for c in self.topology.connections}
        delays = self.delays_ms()
        for name, d in delays.items():
            conn = self.topology.connection(name)
            if not np.isfinite(d).all() or d.min() < 0 or d.max() > conn.delay.max * (1 + 1e-6):
                raise ValueError(
                    f"{conn.delay_name}: delays must lie in [0, {conn.delay.max}] ms, found "
                    f"[{np.nanmin(d):.4g}, {np.nanmax(d):.4g}] ms. Fix: call net.clamp_delays() "
                    "after each optimizer step"
                )
            delays[name] = np.minimum(d, conn.delay.max)
        fn = self._simulation.fake_quantization
        if fn is None:
            return weights, delays, {}
        fq = fn(weights)
        missing = set(weights) - set(fq.weights)
        if missing:
            raise ValueError(f"fake quantization returned no weights for {sorted(missing)}")
        return fq.weights, delays, dict(fq.thresholds)

    def describe_neuron(self, model: NeuronModel) -> dict:
        """``model``'s constants as plain Python (its ``describe()``), with what it computes for
        this network's dt: integer chip decays (``decays(dt)``) and a float input gain
        (``gain(dt)``) for models that have them. Targets write this beside the weights."""
        info = model.describe()
        if hasattr(model, "decays"):  # integer-decay (chip) models: the exact decays in use
            info["i_decay"], info["v_decay"] = model.decays(self.dt)
        if hasattr(model, "gain"):  # float input gain the chip weights must carry
            info["gain"] = model.gain(self.dt)
        return info

    # ----------------------------------------------------------------- private
    def _gradient_targets(self) -> tuple[tuple, list]:
        names, params = [], []
        for conn in self.topology.connections:
            names.append(("w", conn.name))
            params.append(getattr(self, conn.name))
        for conn in self.topology.delayed:
            names.append(("d", conn.name))
            params.append(getattr(self, conn.delay_name))
        for k in range(len(self._models)) if self.learn_tau else ():
            # the coefficient rows as torch expressions of the time constants: the kernels give
            # dL/d(rows), autograd the rest
            names.append(("c", k))
            params.append(self._coefficient_rows(k))
        return tuple(names), params

    def _coefficient_rows(self, k: int) -> torch.Tensor:
        """Hidden layer k's coefficient row (``N_COEF``), or with ``tau_per_neuron`` its row and
        then each neuron's (``[1 + n, N_COEF]``; the layer's row is its first neuron's), as a
        differentiable expression of its time constants."""
        values = {key: getattr(self, f"{key}{k}") for key in self.learn_tau}
        if self.plan.described is not None:  # the layer's A h and u (description_vector), to first order
            keys = list(self.learn_tau)
            value, jac = description_jacobian(self.neurons[k], keys, self.dt)
            theta = torch.stack([values[key].to(torch.float64).reshape(()) for key in keys])
            return torch.as_tensor(value) + torch.as_tensor(jac) @ (theta - theta.detach())
        row = coefficient_row(SimpleNamespace(**self._models[k].differentiable_coefficients(self.dt, **values)))
        if not self.tau_per_neuron:
            return torch.stack([torch.as_tensor(x, dtype=torch.float64) for x in row])
        n = self.hidden[k]
        rows = torch.stack([torch.as_tensor(x, dtype=torch.float64).expand(n) for x in row], dim=1)
        return torch.cat([rows[:1], rows])

    def _kernel_inputs(self):
        np_dtype = np.float32 if self.dtype == torch.float32 else np.float64
        weights, delays, thresholds = self.effective_parameters()
        coefficients = None
        if self.tau_per_neuron:
            coefficients = {}
            for k in range(len(self._models)):
                for key, (lo, hi) in self.learn_tau.items():
                    tau = getattr(self, f"{key}{k}").detach()
                    if not bool(torch.isfinite(tau).all()) or tau.min() < lo or tau.max() > hi:
                        raise ValueError(
                            f"{key}{k}: per-neuron time constants must lie in [{lo:g}, {hi:g}] ms (learn_tau.{key}), "
                            f"found [{tau.min():.4g}, {tau.max():.4g}]. Fix: call net.clamp_parameters() after each "
                            "optimizer step"
                        )
                with torch.no_grad():
                    coefficients[k] = self._coefficient_rows(k)[1:].numpy()
        elif self.learn_tau and self.plan.described is not None:  # the layers' models this call
            coefficients = dict(enumerate(self.neurons))
        elif self.learn_tau:
            coefficients = {k: m.coefficients(self.dt) for k, m in enumerate(self.neurons)}
        return self.backend.inputs(self.plan, weights, delays, thresholds, np_dtype, coefficients)

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
        return data.binary() if self._simulation.binary_input else data

    def _hardware_readout(self, data: SpikeData, readout: torch.Tensor) -> torch.Tensor:
        hw = torch.as_tensor(np.asarray(self._simulation.readout_in_the_loop(data)), dtype=readout.dtype)
        if hw.shape != readout.shape:
            raise ValueError(
                f"readout in the loop: the callable returned shape {tuple(hw.shape)}, "
                f"the network's readout has shape {tuple(readout.shape)}"
            )
        if not torch.isfinite(hw).all():
            raise ValueError("readout in the loop: the callable returned NaN or inf")
        return readout + (hw - readout).detach()


def by_description_to_learn(
    models: Sequence[NeuronModel], output: NeuronModel, learn_tau: Mapping, dt: float, per_neuron: bool, backend: str
) -> list[NeuronModel]:
    """The hidden layers' models for learning their constants on a backend whose specialised
    kernels do not learn closed-form coefficients: each model with a closed form runs by its
    description instead (:func:`~eventkit.engine.neurons.Described`, the same model and the same
    simulated network; the description-driven kernels learn constants per layer). One line with
    the fix where that cannot be."""
    if per_neuron:
        raise ValueError(
            f"learn_tau with tau_per_neuron=true runs on the CPU backend only; the {backend} backend learns "
            "constants per layer. Fix: trainer.device=cpu, or network.tau_per_neuron=false"
        )
    for model in (*models, output):
        try:
            model.dynamics()
        except ValueError:
            raise ValueError(
                f"learn_tau on the {backend} backend runs the network's models by their description, and neuron "
                f"{model.name!r} gives none (NeuronModel.dynamics). Fix: trainer.device=cpu"
            ) from None
    for model in models:
        if model.coefficients(dt) is None:  # runs by its description anyway, checked as such
            continue
        try:
            check_learnable_description(model, learn_tau, "learn_tau")
        except ValueError as err:
            raise ValueError(
                f"{err}, or trainer.device=cpu (the {backend} backend learns constants through the model's "
                "description)"
            ) from None
    return [Described(m) if m.coefficients(dt) is not None else m for m in models]


def parse_learn_tau(spec: Mapping | None, models: Sequence[NeuronModel], dt: float) -> dict[str, tuple[float, float]]:
    """``learn_tau`` ({time constant: [min, max] in ms}) checked against the hidden layers'
    models: each key a time constant the models can learn, each range finite with
    ``dt <= min < max`` and holding every layer's initial value, and no range reaching the other
    time constant's (the exact propagator divides by tau_syn - tau_mem)."""
    if not spec:
        return {}
    if not isinstance(spec, Mapping):
        raise ValueError(
            f"learn_tau: expected {{time constant: [min, max]}}, got {spec!r}. Fix: learn_tau.tau_mem=[5,100]"
        )
    out = {}
    for key, rng in spec.items():
        where = f"learn_tau.{key}"
        for m in models:
            if key not in m.learnable:
                can = f"it can learn {list(m.learnable)}" if m.learnable else "its time constants are fixed"
                raise ValueError(
                    f"{where}: neuron {m.name!r} cannot learn {key!r} ({can}). Fix: remove {where}, or train a "
                    "neuron model that can learn it (neuron=lif)"
                )
        ok = isinstance(rng, Sequence) and not isinstance(rng, str) and len(rng) == 2
        lo, hi = (float(x) for x in rng) if ok and all(isinstance(x, (int, float)) for x in rng) else (math.nan,) * 2
        floor = dt if key.startswith("tau") else 0.0  # a time constant the grid resolves; a step > 0
        if not (math.isfinite(lo) and math.isfinite(hi) and floor <= lo < hi and lo > 0):
            what = f"of ms with dt={dt} <= min < max" if floor else "with 0 < min < max"
            raise ValueError(
                f"{where}: expected a range [min, max] {what}, got {rng!r}. "
                f"Fix: {where}=[{max(dt, 1.0) if floor else 0.05:g},{100 if floor else 1}]"
            )
        for k, m in enumerate(models):
            init = getattr(m, key)
            if not lo <= init <= hi:
                raise ValueError(
                    f"{where}: the range [{lo:g}, {hi:g}] excludes hidden layer {k}'s initial {key}={init:g} ms. "
                    f"Fix: widen {where} or set the neuron's {key} inside it"
                )
        out[key] = (lo, hi)
    for m in models:
        span = {key: out.get(key, (getattr(m, key, math.nan),) * 2) for key in ("tau_mem", "tau_syn")}
        (m_lo, m_hi), (s_lo, s_hi) = span["tau_mem"], span["tau_syn"]
        if max(m_lo, s_lo) <= min(m_hi, s_hi):  # False (nan) for a model without both
            raise ValueError(
                f"learn_tau: tau_mem in [{m_lo:g}, {m_hi:g}] and tau_syn in [{s_lo:g}, {s_hi:g}] ms may meet, where "
                "the exact propagator divides by tau_syn - tau_mem. Fix: give them ranges that do not overlap"
            )
        for corner in itertools.product(*(((key, lo), (key, hi)) for key, (lo, hi) in out.items())):
            try:  # the model's own limits (a chip's integer decays, say) at every corner of the ranges
                at_corner = replace(m, **dict(corner))
                if at_corner.coefficients(dt) is None:  # a model given by its description
                    at_corner.dynamics()
            except ValueError as err:
                at = ", ".join(f"{key}={value:g}" for key, value in corner)
                raise ValueError(
                    f"learn_tau: neuron {m.name!r} at {at} (a corner of the ranges): {err}. Fix: narrow the ranges"
                ) from None
    return out


TAU_INITS = ("constant", "log_uniform", "gamma")


def check_tau_shape(learn_tau: dict, per_neuron, init: str, gamma_shape) -> bool:
    """``tau_per_neuron`` and its initialisation checked against ``learn_tau`` and the network."""
    if not isinstance(per_neuron, bool):
        raise ValueError(f"tau_per_neuron: expected true or false, got {per_neuron!r}")
    if init not in TAU_INITS:
        raise ValueError(f"tau_init: expected one of {list(TAU_INITS)}, got {init!r}. Fix: tau_init=log_uniform")
    if not (isinstance(gamma_shape, (int, float)) and math.isfinite(gamma_shape) and gamma_shape > 0):
        raise ValueError(f"tau_gamma_shape: must be a number > 0, got {gamma_shape!r}. Fix: tau_gamma_shape=3")
    if not per_neuron:
        if init != "constant":
            raise ValueError(
                f"tau_init={init}: draws a value per neuron, but the time constants are one per layer. "
                "Fix: tau_per_neuron=true, or tau_init=constant"
            )
        return False
    if not learn_tau:
        raise ValueError(
            "tau_per_neuron: no time constant is learnable. Fix: set learn_tau, e.g. learn_tau.tau_mem=[5,100]"
        )
    other = sorted(set(learn_tau) - {"tau_mem", "tau_syn"})
    if other:
        raise ValueError(
            f"tau_per_neuron: {other} are learned per layer only; per neuron are tau_mem and tau_syn. "
            f"Fix: remove {other} from learn_tau, or tau_per_neuron=false"
        )
    return True


def check_per_neuron_model(model: NeuronModel, learn_tau: dict, dt: float) -> None:
    """Per-neuron time constants reach the kernels as one coefficient row per neuron, of which
    they read b0, theta and the adaptation per layer: ``model``'s must not depend on them."""
    values = {
        key: torch.tensor([lo, hi], dtype=torch.float64, requires_grad=True) for key, (lo, hi) in learn_tau.items()
    }
    try:
        coefficients = model.differentiable_coefficients(dt, **values)
        shared = [key for key in ("b0", "theta", "rho_a", "ha", "delta_a") if _depends(coefficients[key])]
        why = f"its {', '.join(shared)} would depend on them, which the kernels hold per layer"
    except (TypeError, ValueError, RuntimeError):
        shared, why = True, "its coefficients take one value per time constant"
    if shared:
        raise ValueError(
            f"tau_per_neuron: neuron {model.name!r} cannot take its time constants per neuron ({why}). "
            "Fix: tau_per_neuron=false, or neuron=lif"
        )


def _depends(x) -> bool:
    return torch.is_tensor(x) and x.requires_grad


def initial_time_constants(init: str, value: float, rng: tuple, n: int, gamma_shape: float, generator) -> torch.Tensor:
    """n initial values (float64) of one time constant within its range ``rng``: ``constant``
    (the model's ``value``), ``log_uniform`` over the range, or ``gamma`` with mean ``value`` and
    shape ``gamma_shape``, clipped to the range (docs/engine.md, "Learnable time constants")."""
    lo, hi = rng
    if init == "constant":
        return torch.full((n,), value, dtype=torch.float64)
    if init == "log_uniform":
        u = torch.rand(n, generator=generator, dtype=torch.float64)
        return torch.exp(math.log(lo) + u * (math.log(hi) - math.log(lo)))
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    draw = np.random.default_rng(seed).gamma(gamma_shape, value / gamma_shape, n)
    return torch.as_tensor(np.clip(draw, lo, hi), dtype=torch.float64)


def spike_count_regularizer(
    counts: torch.Tensor, strength: float, nu: float, strength_lower: float | None = None
) -> torch.Tensor:
    """Per-neuron spike-count regulariser of the Eventprop papers.

    ``C_n`` = spikes of hidden neuron n summed over the batch; target ``nu * B``. Loss
    ``strength/2 * sum_n (C_n - nu B)^2`` above the target and ``strength_lower/2 * ...`` below it
    (``strength_lower`` defaults to ``strength``). Spike counts are piecewise constant in every
    parameter (their true gradient is zero almost everywhere), so this term has no exact gradient:
    it enters the backward pass the way mlGeNN does it, as a surrogate kick ``tau_mem * dL/dC_n``
    added to the membrane adjoint of neuron n at the start of the step of each of its spikes.
    The kick against its defined value: tests/test_engine_behaviour.py; that it lowers activity:
    tests/test_engine_gradients.py (docs/engine.md, "What is exact").
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
