"""The math of one neuron and one synapse, written once for both backends.

The CPU kernels (:mod:`._cpu_kernels`, numba ``prange`` over samples) and the CUDA kernels
(:mod:`._cuda_kernels`, one thread block per sample) differ in how they loop -- over a population's
neurons, a spike's targets, a step's spikes -- and in nothing they compute: every formula for the
step, the threshold crossing, the restart, a spike's arrival and the adjoint jumps is a function
here. They are plain Python functions of scalars; each backend compiles them inline into its
loops (``numba.njit(inline="always")``, ``cuda.jit(device=True, inline="always")``, through
:func:`compiled`), so the code
is what the formula written out in place would give, and the operation order -- hence every
float32/float64 rounding -- is the same on both backends.

Notation of ``eventkit.engine.neurons``: a population's propagator over one step ``(alpha, beta,
kappa)``, ``hm = -log alpha``, ``hs = -log beta``, ``c = kappa / (beta - alpha)``, the weight-to-``i``
gain ``b0`` (``b0c = b0 c``); ``phi`` is a spike's phase within its step. Threshold adaptation
(ALIF) enters through ``a`` (its value at the step's start) and its decay ``rho_a``; without
adaptation both are 0 and the formulas reduce exactly (the operations on 0 are exact).
"""

from __future__ import annotations

import hashlib
import math
import types
from pathlib import Path


def advance(v, i, alpha, kappa):
    """The membrane potential at the end of the step, before the threshold: ``alpha v + kappa i``
    (the current decays separately, ``i <- beta i``)."""
    return alpha * v + kappa * i


def adjoint_back(lam_v, lam_i, alpha, beta, kappa):
    """One step of the adjoint, the transposed propagator: ``(alpha lam_v, kappa lam_v + beta
    lam_i)``."""
    return alpha * lam_v, kappa * lam_v + beta * lam_i


def crossing_phase(u, u_adv, theta):
    """The phase in ``[0, 1)`` at which ``u = v - a`` crosses ``theta``, by linear interpolation
    between its values at the step's start (``u``) and end (``u_adv``); 0 when it starts above."""
    if u >= theta:
        return 0.0
    return (theta - u) / (u_adv - u)


def crossing_sensitivities(v, cur, a, alpha, kappa, rho_a, theta):
    """What the backward pass needs of a crossing from the recorded state ``(v, i = cur, a)``:
    ``(theta - u, d, 1 / d^2, dphi/dv, dphi/di)`` with ``u = v - a`` and ``d = u_adv - u`` the
    interpolation's slope (``phi = (theta - u) / d``)."""
    v_adv = alpha * v + kappa * cur
    u = v - a
    gap = theta - u
    d = (v_adv - rho_a * a) - u
    inv_d2 = 1.0 / (d * d)
    dphi_dv = (-d - gap * (alpha - 1.0)) * inv_d2
    dphi_di = -gap * kappa * inv_d2
    return gap, d, inv_d2, dphi_dv, dphi_di


def restart(c, beta, hm, hs, phi):
    """A spike at ``phi`` restarts ``v`` from 0; at the step's end ``v = R i`` (``i`` the current
    at the step's start). Returns ``(R, dR/dphi, alpha^(1-phi) beta^phi)``."""
    em = math.exp(-(1.0 - phi) * hm - phi * hs)
    return c * (beta - em), -c * (hm - hs) * em, em


def remaining_decays(phi, hs, hm):
    """``(beta^(1-phi), alpha^(1-phi))``: the target's decays from a spike at ``phi`` to the end of
    its step."""
    return math.exp(-(1.0 - phi) * hs), math.exp(-(1.0 - phi) * hm)


def decay_series(x):
    """``exp(-x)`` for ``0 <= x <= 1`` as plain arithmetic (relative error about 1e-15), which
    compilers vectorise where a call to ``exp`` is not: the Taylor series of ``exp(-x / 8)`` to
    degree 10 (its remainder is below 3e-18 there), squared three times. The per-synapse decays of
    neurons with their own time constants (``x = r dt / tau <= 1``: ``dt <= tau`` is enforced)."""
    y = -0.125 * x
    p = 1.0 + y * 0.1
    p = 1.0 + y * (1.0 / 9.0) * p
    p = 1.0 + y * 0.125 * p
    p = 1.0 + y * (1.0 / 7.0) * p
    p = 1.0 + y * (1.0 / 6.0) * p
    p = 1.0 + y * 0.2 * p
    p = 1.0 + y * 0.25 * p
    p = 1.0 + y * (1.0 / 3.0) * p
    p = 1.0 + y * 0.5 * p
    p = 1.0 + y * p
    p = p * p
    p = p * p
    return p * p


def arrival(b0, b0c, x, y):
    """What a unit weight adds to the target's ``(i, v)`` when it arrives with the remaining decays
    ``x`` of ``i`` and ``y`` of ``v`` (``beta^r``, ``alpha^r``): ``(b0 x, b0 c (x - y))``."""
    return b0 * x, b0c * (x - y)


def arrival_rate(b0, b0c, x, y, hs, hm):
    """The derivative of :func:`arrival` with respect to the arrival time (in steps, earlier is
    positive): ``(b0 x hs, b0 c (hs x - hm y))``; a spike's ``dL/dphi`` and a delay's gradient."""
    return b0 * x * hs, b0c * (hs * x - hm * y)


def arrival_decay_terms(s_i, s_v, b0, c, x, y, r):
    """An arrival's derivatives in the target's coefficients at fixed arrival time, paired with
    its adjoint (``s_i = w lam_i``, ``s_v = w lam_v``, or their sums over a spike's targets): the
    arrival ``w (b0 x, b0 c (x - y))`` with ``x = exp(-r hs)``, ``y = exp(-r hm)`` over ``r`` steps
    gives the terms in ``(b0, c, hs, hm)``."""
    return (
        x * s_i + c * (x - y) * s_v,
        b0 * (x - y) * s_v,
        -(r * b0 * x * (s_i + c * s_v)),
        r * b0 * c * y * s_v,
    )


def delayed_decays(phi, frac, bs, am, bm, amf, beta, alpha):
    """A spike at ``phi`` on a synapse whose delay has the sub-step part ``frac`` (``bm =
    beta^(-frac)``, ``amf = alpha^(-frac)``; ``bs``, ``am``: :func:`remaining_decays`): the decays
    ``(x, y)`` from its arrival to the grid time where it is applied, and whether that is one
    step later than the whole steps of the delay say (the arrival falls into the following
    step)."""
    late = phi + frac > 1.0
    return bs * bm * (beta if late else 1.0), am * amf * (alpha if late else 1.0), late


FORMULAS = (
    advance,
    adjoint_back,
    crossing_phase,
    crossing_sensitivities,
    restart,
    remaining_decays,
    decay_series,
    arrival,
    arrival_rate,
    arrival_decay_terms,
    delayed_decays,
)


def compiled(decorator) -> types.ModuleType:
    """Every formula of this module compiled by a backend's inline ``decorator``, as the attributes
    of one namespace that the backend's kernels call (``nm.advance(...)``; numba resolves a
    module's attributes when it compiles the caller)."""
    namespace = types.ModuleType(f"{__name__}.compiled")
    for formula in FORMULAS:
        setattr(namespace, formula.__name__, decorator(formula))
    return namespace


def refresh_stale_cache(kernel_file: str, namespace: dict) -> None:
    """numba keys a cached kernel to its own module's source (a hash of that file) only, not to
    the formulas it inlines from here: after an edit of this file, a kernel module's cached machine
    code would still hold the old formulas. Each kernel module calls this after its definitions:
    when this file's hash differs from the one stamped beside the kernel module (in its
    ``__pycache__``), the cache of every compiled function the module defines is emptied (numba
    compiles them afresh on their next call) and the new hash is stamped. Where the cache cannot
    be written (a read-only install, whose files only change together), nothing is done."""
    digest = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()
    kernel = Path(kernel_file)
    stamp = kernel.parent / "__pycache__" / f"{kernel.stem}.neuron_math.sha256"
    try:
        if stamp.read_text() == digest:
            return
    except OSError:
        pass
    try:
        for obj in list(namespace.values()):
            cache = getattr(obj, "_cache", None)  # a numba dispatcher compiled with cache=True
            if (
                cache is not None
                and getattr(getattr(obj, "py_func", None), "__module__", None) == namespace["__name__"]
            ):
                cache.flush()
        stamp.parent.mkdir(exist_ok=True)
        stamp.write_text(digest)
    except OSError:
        pass
