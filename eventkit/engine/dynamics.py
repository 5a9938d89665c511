"""A neuron model as data: a linear system between spikes, a threshold, an affine reset.

Between events every model eventkit simulates is linear in a few state variables ``x``::

    dx/dt = A x                         (A: ``matrix``, per ms)
    a spike of weight w arriving:       x <- x + w u        (u: ``input``)
    fires when c . x crosses theta      (c: ``threshold``)
    at its spike:                       x <- R x + r        (R, r: ``reset`` and ``jump``)

:class:`LinearDynamics` holds exactly that, by state name. The engine integrates it exactly on the
grid (propagator ``exp(A h)``) and places a spike inside its step the way it does for LIF (linear
interpolation of ``c . x`` across the step, docs/engine.md, section 3): the state at the spike is
``exp(A phi h) x``, the reset acts there and the rest of the step is ``exp(A (1 - phi) h)``; a
target receives ``w exp(A_t (1 - phi) h) u_t`` at the end of the step. The Eventprop backward pass
is the exact adjoint of that map (docs/engine.md, "Models as descriptions"), for any description.

A model plugin returns its description from :meth:`NeuronModel.dynamics`; nothing else is needed
for it to train (see docs/writing-a-neuron-model.md). The built-in two-variable models also give
closed-form coefficients (``NeuronModel.coefficients``) and run on kernels specialised for them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, NamedTuple

import numpy as np


def _as_tuple(x) -> tuple:
    return tuple(tuple(float(v) for v in row) for row in x)


@dataclass(frozen=True)
class LinearDynamics:
    """A neuron model's description (module docstring). Vectors are given by state name; a state
    a vector does not name has 0 there. ``reset`` sets states at a spike (``{"v": 0.0}``), ``jump``
    adds to them (``{"a": 0.2}``); states named in neither are kept. ``threshold=None`` describes a
    non-spiking model (a readout). ``membrane`` names the state the output trace records and the
    spike-count regulariser kicks (scaled by ``count_scale``, in ms, like ``tau_mem`` for LIF)."""

    states: tuple
    matrix: tuple
    input: Mapping = field(default_factory=dict)
    threshold: Mapping | None = None
    theta: float = 1.0
    reset: Mapping = field(default_factory=dict)
    jump: Mapping = field(default_factory=dict)
    membrane: str = ""
    count_scale: float = 1.0
    model: str = "neuron"  # the model's name, for messages

    def __post_init__(self):
        object.__setattr__(self, "states", tuple(str(s) for s in self.states))
        try:
            matrix = np.atleast_2d(np.asarray(self.matrix, dtype=np.float64))
        except (TypeError, ValueError):
            raise ValueError(
                f"{self.model}: matrix must be a square table of numbers, one row per state "
                f"{list(self.states)}; got {self.matrix!r}"
            ) from None
        object.__setattr__(self, "matrix", _as_tuple(matrix))
        self.validate()

    @property
    def spiking(self) -> bool:
        return self.threshold is not None

    @property
    def n_states(self) -> int:
        return len(self.states)

    def _vector(self, key: str, values: Mapping) -> np.ndarray:
        out = np.zeros(self.n_states)
        for name, value in dict(values).items():
            if name not in self.states:
                raise ValueError(
                    f"{self.model}: {key} names the state {name!r}, which is not one of the declared "
                    f"states {list(self.states)}. Fix: declare it in states or use one of those"
                )
            if not math.isfinite(float(value)):
                raise ValueError(f"{self.model}: {key}[{name!r}] must be finite, got {value!r}")
            out[self.states.index(name)] = float(value)
        return out

    def validate(self) -> None:
        """Every inconsistency as one line that names the key and the fix."""
        n = self.n_states
        if n == 0 or len(set(self.states)) != n:
            raise ValueError(f"{self.model}: states must be distinct names, got {list(self.states)}")
        a = np.asarray(self.matrix)
        if a.shape != (n, n):
            raise ValueError(
                f"{self.model}: matrix has shape {a.shape} but {n} states are declared "
                f"{list(self.states)}; give one row and one column per state"
            )
        if not np.isfinite(a).all():
            raise ValueError(f"{self.model}: matrix must be finite")
        u = self._vector("input", self.input)
        if not u.any():
            raise ValueError(f"{self.model}: input must add to at least one state, e.g. input={{'i': 1.0}}")
        if self.spiking:
            c = self._vector("threshold", self.threshold)
            if not c.any():
                raise ValueError(f"{self.model}: threshold must weigh at least one state, e.g. threshold={{'v': 1.0}}")
            if not (math.isfinite(self.theta) and self.theta > 0):
                raise ValueError(f"{self.model}: theta must be a positive number, got {self.theta!r}. Fix: theta=1.0")
        self._vector("reset", self.reset)
        self._vector("jump", self.jump)
        if self.membrane not in self.states:
            raise ValueError(
                f"{self.model}: membrane={self.membrane!r} must name one of the states {list(self.states)}"
            )
        if not (math.isfinite(self.count_scale) and self.count_scale > 0):
            raise ValueError(f"{self.model}: count_scale must be a positive number of ms, got {self.count_scale!r}")
        lam, vec = np.linalg.eig(a)
        if np.any(lam.real > 1e-12):
            raise ValueError(
                f"{self.model}: matrix has the growing mode(s) {np.round(lam[lam.real > 1e-12], 6).tolist()} "
                "per ms; the engine integrates decaying or oscillating models only (eigenvalues with "
                "real part <= 0). Fix the signs of the decay terms"
            )
        if np.linalg.cond(vec) > 1e8:
            raise ValueError(
                f"{self.model}: matrix is not diagonalisable (repeated eigenvalues "
                f"{np.round(lam, 6).tolist()}), which the exact sub-step propagator needs; make the "
                "time constants differ slightly (e.g. tau_mem != tau_syn)"
            )

    def affine_reset(self) -> tuple[np.ndarray, np.ndarray]:
        """A spike's reset as ``x -> reset x + r``: ``reset`` zeroes the rows of the states it
        sets, ``r`` holds what ``reset`` sets plus what ``jump`` adds."""
        reset = np.eye(self.n_states)
        r = np.zeros(self.n_states)
        for name, value in dict(self.reset).items():
            k = self.states.index(name)
            reset[k] = 0.0
            r[k] = float(value)
        return reset, r + self._vector("jump", self.jump)

    def discretise(self, dt: float) -> "Discrete":
        """The per-step arrays the kernels use, for grid step ``dt`` (ms)."""
        a = np.asarray(self.matrix) * dt  # per step
        lam, vec = np.linalg.eig(a.astype(np.complex128))
        vinv = np.linalg.inv(vec)
        prop = (vec @ np.diag(np.exp(lam)) @ vinv).real
        reset, r = self.affine_reset()
        c = self._vector("threshold", self.threshold) if self.spiking else np.zeros(self.n_states)
        return Discrete(
            prop=prop,
            a_step=a,
            vec=vec,
            vinv=vinv,
            lam=lam,
            u=self._vector("input", self.input),
            c=c,
            theta=float(self.theta) if self.spiking else math.inf,
            reset=reset,
            r=r,
            membrane=self.states.index(self.membrane),
            count_scale=float(self.count_scale),
        )


class Discrete(NamedTuple):
    """:class:`LinearDynamics` on a grid of step h: ``prop = exp(A h)``, ``a_step = A h`` and its
    eigen-decomposition ``a_step = vec diag(lam) vinv`` (for the sub-step propagators
    ``exp(A s h) = vec diag(exp(lam s)) vinv``), input ``u``, threshold row ``c`` and ``theta``,
    reset ``x -> reset x + r``, the membrane state's index and the regulariser's scale."""

    prop: np.ndarray
    a_step: np.ndarray
    vec: np.ndarray
    vinv: np.ndarray
    lam: np.ndarray
    u: np.ndarray
    c: np.ndarray
    theta: float
    reset: np.ndarray
    r: np.ndarray
    membrane: int
    count_scale: float


def two_exponential(
    model: str, tau_mem: float, tau_syn: float, threshold: float | None, tau_adapt: float = 0.0, adapt_step: float = 0.0
) -> LinearDynamics:
    """The current-based LIF family as a description: ``(v, i)``, plus an adaptive threshold
    ``a`` (ALIF) when ``tau_adapt > 0``."""
    states = ["v", "i"]
    rows = [[-1.0 / tau_mem, 1.0 / tau_mem], [0.0, -1.0 / tau_syn]]
    thr, jump = {"v": 1.0}, {}
    if tau_adapt > 0:
        states.append("a")
        rows = [r + [0.0] for r in rows] + [[0.0, 0.0, -1.0 / tau_adapt]]
        thr, jump = {"v": 1.0, "a": -1.0}, {"a": adapt_step}
    return LinearDynamics(
        states=tuple(states),
        matrix=rows,
        input={"i": 1.0},
        threshold=thr if threshold is not None else None,
        theta=threshold if threshold is not None else 1.0,
        reset={"v": 0.0},
        jump=jump,
        membrane="v",
        count_scale=tau_mem,
        model=model,
    )


def description_vector(model, dt: float) -> np.ndarray:
    """What of ``model``'s description its learnable constants may move (float64): ``A h``
    (row-major), the input ``u``, the reset's offset ``r`` (what ``reset`` sets and ``jump``
    adds) and ``theta`` (0 for a model that does not spike)."""
    d = model.dynamics()
    r = d.affine_reset()[1]
    theta = float(d.theta) if d.spiking else 0.0
    a_step = np.asarray(d.matrix, dtype=np.float64).reshape(-1) * dt
    return np.concatenate([a_step, d._vector("input", d.input), r, [theta]])


def _fixed_parts(d: LinearDynamics) -> tuple:
    """What of a description learnable constants may not move: its states, threshold row and
    which states the reset sets."""
    c = tuple(d._vector("threshold", d.threshold)) if d.spiking else ()
    return (d.states, d.spiking, c, tuple(sorted(d.reset)))


def description_jacobian(model, keys, dt: float) -> tuple[np.ndarray, np.ndarray]:
    """``model``'s :func:`description_vector` and its derivative in each constant of ``keys``
    (``[len, len(keys)]``), by a fourth-order central difference of the description with a step
    of 1e-3 of each constant's size: for the smooth descriptions models give (``1 / tau``,
    ``omega``), about 1e-12 relative. Everything past the description is exact (docs/engine.md,
    "Learnable model parameters")."""
    from dataclasses import replace

    value = description_vector(model, dt)
    jac = np.zeros((value.size, len(keys)))
    for col, key in enumerate(keys):
        x = float(getattr(model, key))
        h = 1e-3 * abs(x) if x != 0.0 else 1e-6
        f = [description_vector(replace(model, **{key: x + k * h}), dt) for k in (-2, -1, 1, 2)]
        jac[:, col] = (f[0] - 8.0 * f[1] + 8.0 * f[2] - f[3]) / (12.0 * h)
    return value, jac


def check_learnable_description(model, keys, where: str) -> None:
    """One line naming the constant and the fix when a learnable constant of a described model
    moves its threshold row or which states its reset sets: the backward pass differentiates
    ``A``, ``u``, the reset's offset ``r`` and ``theta`` only (:func:`description_vector`)."""
    from dataclasses import replace

    base = _fixed_parts(model.dynamics())
    for key in keys:
        x = float(getattr(model, key))
        moved = replace(model, **{key: x * 1.01 if x != 0.0 else 1e-3})
        if _fixed_parts(moved.dynamics()) != base:
            raise ValueError(
                f"{where}.{key}: neuron {model.name!r}'s {key} moves its threshold row or which states its reset "
                "sets, which the engine cannot learn for a model given by its description (it learns constants of "
                "its dynamics matrix, input, reset values, jumps and theta). Fix: remove "
                f"{where}.{key}"
            )
