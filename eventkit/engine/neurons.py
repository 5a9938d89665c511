"""Neuron models as small declarative specs the compiled kernels read.

Every model here is a linear two-variable neuron (membrane ``v``, synaptic current ``i``) advanced
exactly over one grid step ``h = dt``::

    v(n+1) = alpha * v(n) + kappa * i(n)          i(n+1) = beta * i(n)

A spike that is fired at the sub-step fraction ``phi`` of step n (``t* = (n + phi) h``, found by linear
interpolation of ``v`` across the step) is delivered to a target at the end of that step with the
exact remaining decay over ``(1 - phi) h`` (``b``: into ``i``, ``e``: into ``v``), and the firing
neuron's own ``v`` restarts from 0 at ``t*``::

    b(phi) = b0 * beta^(1-phi)
    e(phi) = b0 * c * (beta^(1-phi) - alpha^(1-phi))
    v(n+1) = R(phi) * i(n),   R(phi) = c * (beta - alpha^(1-phi) * beta^phi)

with ``beta^s = exp(-s hs)``, ``alpha^s = exp(-s hm)``. Between grid points the neuron is the one
continuous linear system whose propagator over a whole step is ``(alpha, beta, kappa)``:
``hm = -log alpha``, ``hs = -log beta`` and ``c = kappa / (beta - alpha)``. A model therefore gives
only its propagator (and ``b0``, the weight-to-``i`` gain); the relaxation follows from it and is
time-invariant, so moving a spike by a fraction of a step only shifts its effect in time.
Because spike times move continuously with the parameters, the loss is differentiable between
spike-count changes and the engine's Eventprop backward pass is its exact gradient (for the
exceptions -- grid timing, the regulariser, ``max_v``'s continuous limit -- see docs/engine.md,
"What is exact"). As ``dt -> 0`` the scheme converges to the continuous-time LIF of Wunderlich &
Pehle (2021) (tests/test_engine_continuous.py). Every model here also describes itself as a linear system
(``NeuronModel.dynamics``, :mod:`eventkit.engine.dynamics`); a new model need only do that.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from functools import lru_cache

from . import portable
from .dynamics import LinearDynamics, two_exponential


@dataclass(frozen=True)
class Coefficients:
    """Per-population numbers the kernels use (see the module docstring)."""

    alpha: float  # v propagator over one step
    beta: float  # i propagator over one step
    kappa: float  # i -> v over one step
    b0: float  # weight -> i gain of a spike
    theta: float
    tau_mem: float
    spiking: bool
    grid: bool = False  # spikes take effect at the end of their step, as on a chip (see LoihiCUBA)
    rho_a: float = 0.0  # threshold adaptation: a's decay over one step (ALIF; 0: no adaptation)
    delta_a: float = 0.0  # a's jump at a spike (ALIF; 0: no adaptation)

    def __post_init__(self):
        if not (0.0 < self.alpha < 1.0 and 0.0 < self.beta < 1.0) or self.alpha == self.beta:
            raise ValueError(
                f"neuron coefficients: alpha={self.alpha} and beta={self.beta} must be "
                "distinct decays in (0, 1); make tau_mem and tau_syn differ"
            )

    @property
    def hm(self) -> float:
        """-log alpha: d/dphi of log alpha^(1-phi)."""
        return -math.log(self.alpha)

    @property
    def hs(self) -> float:
        """-log beta."""
        return -math.log(self.beta)

    @property
    def ha(self) -> float:
        """-log rho_a (0 without adaptation)."""
        return -math.log(self.rho_a) if self.rho_a > 0 else 0.0

    @property
    def c(self) -> float:
        """i -> v coupling of the continuous relaxation: kappa = c (beta - alpha)."""
        return self.kappa / (self.beta - self.alpha)


_TYPICAL = {"tau_mem": 20.0, "tau_syn": 5.0, "tau_adapt": 200.0, "adapt_step": 0.2}


def check_positive(model: str, **values: float) -> None:
    for key, value in values.items():
        if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise ValueError(
                f"{key}: must be > 0 ({model}: a positive number{' of ms' if key.startswith('tau') else ''}), "
                f"got {value!r}. Fix: {key}={_TYPICAL.get(key, 1.0)}"
            )


def _check_dt(model: str, dt: float, **taus: float) -> None:
    for key, tau in taus.items():
        if dt > tau:
            raise ValueError(
                f"{model}: dt={dt} ms is larger than {key}={tau} ms; the grid cannot resolve the "
                f"dynamics. Use a smaller dt or a larger {key}."
            )


def _two_exponential(tau_mem: float, tau_syn: float, dt: float) -> tuple[float, float, float]:
    """alpha, beta and kappa = c (beta - alpha), c = tau_syn / (tau_syn - tau_mem), of the exact LIF
    propagator."""
    alpha = math.exp(-dt / tau_mem)
    beta = math.exp(-dt / tau_syn)
    if abs(tau_syn - tau_mem) < 1e-9 * tau_mem:
        raise ValueError(
            f"tau_mem and tau_syn must differ (both {tau_mem} ms): the exact propagator divides by "
            "their difference. Change one of them slightly."
        )
    c = tau_syn / (tau_syn - tau_mem)
    return alpha, beta, c * (beta - alpha)


def _two_exponential_torch(tau_mem, tau_syn, dt: float) -> dict:
    """:func:`_two_exponential` and the logs of the decays as differentiable torch expressions of
    the time constants (0-d tensors or floats)."""
    import torch

    tau_mem, tau_syn = torch.as_tensor(tau_mem, dtype=torch.float64), torch.as_tensor(tau_syn, dtype=torch.float64)
    alpha, beta = portable.exp(-dt / tau_mem), portable.exp(-dt / tau_syn)
    c = tau_syn / (tau_syn - tau_mem)
    return dict(alpha=alpha, beta=beta, kappa=c * (beta - alpha), c=c, hm=dt / tau_mem, hs=dt / tau_syn)


def _two_exponential_model(model, dt: float, values: dict, theta: float) -> dict:
    """The coefficients of a LIF-family ``model`` whose time constants ``values`` override."""
    taus = {"tau_mem": model.tau_mem, "tau_syn": model.tau_syn, **values}
    return dict(
        _two_exponential_torch(taus["tau_mem"], taus["tau_syn"], dt),
        b0=1.0,
        theta=theta,
        rho_a=0.0,
        ha=0.0,
        delta_a=0.0,
    )


@dataclass(frozen=True)
class NeuronModel:
    """Base of all neuron models. A model describes itself with ``dynamics()``: its
    :class:`~eventkit.engine.dynamics.LinearDynamics` (states, matrix, input, threshold, reset),
    which is all the engine needs to simulate it and compute its exact gradients. A model of the
    two-variable family (``lif``, ``li``, ``alif``, the chip's ``loihi_cuba``) also gives
    ``coefficients(dt)``, its closed-form :class:`Coefficients`, and runs on kernels specialised for
    that family; a network whose models all have them runs there, any other on the
    description-driven kernels. A model whose time constants may be learned names them in
    ``learnable`` and gives ``differentiable_coefficients(dt, **values)``: its :class:`Coefficients`
    fields as torch expressions of those values (the engine differentiates the simulation with
    respect to the coefficients and lets torch take the rest of the chain)."""

    name = "neuron"
    spiking = True
    learnable = ()  # names of the time constants that may be learned

    def dynamics(self) -> LinearDynamics:
        raise ValueError(
            f"neuron {self.name!r} does not describe its dynamics (NeuronModel.dynamics); it runs only "
            "on the kernels of its own family and cannot share a network with a model given by its "
            "description. Fix: use one kind of model in the network, or give the model a dynamics()"
        )

    def coefficients(self, dt: float) -> Coefficients | None:
        """The closed-form coefficients of the two-variable family, or None: the model runs on the
        description-driven kernels (:meth:`dynamics`)."""
        return None

    def differentiable_coefficients(self, dt: float, **values) -> dict:
        raise ValueError(f"neuron {self.name!r} has no learnable time constants")

    def describe(self) -> dict:
        return {"name": self.name, **asdict(self)}


@dataclass(frozen=True)
class LIF(NeuronModel):
    """Leaky integrate-and-fire with exponential current synapses, integrated exactly per step.

    tau_mem dV/dt = -V + I, tau_syn dI/dt = -I; spike when V crosses ``threshold``; V -> 0.
    """

    tau_mem: float = 20.0
    tau_syn: float = 5.0
    threshold: float = 1.0
    refractory: float = 0.0

    name = "lif"

    def __post_init__(self):
        check_positive("lif", tau_mem=self.tau_mem, tau_syn=self.tau_syn, threshold=self.threshold)
        if self.refractory != 0:
            raise ValueError(
                "lif: refractory must be 0. A refractory period makes the spike-time map "
                "non-differentiable and Eventprop has no exact gradient for it; remove the setting."
            )

    def coefficients(self, dt: float) -> Coefficients:
        _check_dt("lif", dt, tau_mem=self.tau_mem, tau_syn=self.tau_syn)
        alpha, beta, kappa = _two_exponential(self.tau_mem, self.tau_syn, dt)
        return Coefficients(alpha, beta, kappa, 1.0, self.threshold, self.tau_mem, True)

    learnable = ("tau_mem", "tau_syn")

    def differentiable_coefficients(self, dt: float, **values) -> dict:
        return _two_exponential_model(self, dt, values, self.threshold)

    def dynamics(self) -> LinearDynamics:
        return two_exponential("lif", self.tau_mem, self.tau_syn, self.threshold)


@dataclass(frozen=True)
class LI(NeuronModel):
    """Non-spiking leaky integrator (readout): the LIF dynamics without threshold."""

    tau_mem: float = 20.0
    tau_syn: float = 5.0

    name = "li"
    spiking = False

    def __post_init__(self):
        check_positive("li", tau_mem=self.tau_mem, tau_syn=self.tau_syn)

    def coefficients(self, dt: float) -> Coefficients:
        _check_dt("li", dt, tau_mem=self.tau_mem, tau_syn=self.tau_syn)
        alpha, beta, kappa = _two_exponential(self.tau_mem, self.tau_syn, dt)
        return Coefficients(alpha, beta, kappa, 1.0, math.inf, self.tau_mem, False)

    learnable = ("tau_mem", "tau_syn")

    def differentiable_coefficients(self, dt: float, **values) -> dict:
        return _two_exponential_model(self, dt, values, math.inf)

    def dynamics(self) -> LinearDynamics:
        return two_exponential("li", self.tau_mem, self.tau_syn, None)


@dataclass(frozen=True)
class ALIF(NeuronModel):
    """Adaptive LIF: the LIF above with a threshold ``theta + a`` that rises by ``adapt_step`` at
    each spike and relaxes with ``tau_adapt``::

        tau_adapt dA/dt = -A,   at a spike: A -> A + adapt_step

    The crossing of ``V - A`` is interpolated within the step like LIF's crossing of ``V``, and a
    spike at the fraction ``phi`` of its step adds ``adapt_step`` decayed over the rest of the step
    (Bellec et al. 2018's adaptive threshold, integrated exactly between spikes).
    """

    tau_mem: float = 20.0
    tau_syn: float = 5.0
    threshold: float = 1.0
    tau_adapt: float = 200.0
    adapt_step: float = 0.2

    name = "alif"

    def __post_init__(self):
        check_positive(
            "alif",
            tau_mem=self.tau_mem,
            tau_syn=self.tau_syn,
            threshold=self.threshold,
            tau_adapt=self.tau_adapt,
            adapt_step=self.adapt_step,
        )

    def coefficients(self, dt: float) -> Coefficients:
        _check_dt("alif", dt, tau_mem=self.tau_mem, tau_syn=self.tau_syn, tau_adapt=self.tau_adapt)
        alpha, beta, kappa = _two_exponential(self.tau_mem, self.tau_syn, dt)
        rho_a = math.exp(-dt / self.tau_adapt)
        return Coefficients(alpha, beta, kappa, 1.0, self.threshold, self.tau_mem, True, False, rho_a, self.adapt_step)

    learnable = ("tau_mem", "tau_syn", "tau_adapt", "adapt_step")

    def differentiable_coefficients(self, dt: float, **values) -> dict:
        import torch

        tau_adapt = torch.as_tensor(values.get("tau_adapt", self.tau_adapt), dtype=torch.float64)
        out = _two_exponential_model(self, dt, values, self.threshold)
        out.update(
            rho_a=portable.exp(-dt / tau_adapt), ha=dt / tau_adapt, delta_a=values.get("adapt_step", self.adapt_step)
        )
        return out

    def dynamics(self) -> LinearDynamics:
        return two_exponential("alif", self.tau_mem, self.tau_syn, self.threshold, self.tau_adapt, self.adapt_step)


@lru_cache(maxsize=None)
def _by_description(cls: type) -> type:
    def coefficients(self, dt: float) -> None:
        return None

    doc = f"{cls.__name__} without its closed-form coefficients (see :func:`Described`)."
    return type(f"{cls.__name__}ByDescription", (cls,), {"coefficients": coefficients, "__doc__": doc})


def Described(model: NeuronModel) -> NeuronModel:  # noqa: N802 -- it makes a model, as a class would
    """``model`` given by its description only (its :meth:`~NeuronModel.dynamics`, without its
    closed-form coefficients): the same model, with the same fields (so ``learn_tau`` reaches its
    constants), whose network runs on the description-driven kernels. For checking a model's
    description against its closed form (same spikes and gradients) and for timing the generic
    kernels against the specialised ones (``python -m eventkit.bench --described``)."""
    cls = _by_description(type(model))
    return cls(**{f.name: getattr(model, f.name) for f in fields(model)})
