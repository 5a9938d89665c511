"""Compiled forward and Eventprop backward kernels for models given as descriptions (numba, CPU).

Every population p is the linear system of its :class:`~eventkit.engine.dynamics.LinearDynamics`
on the grid (``Model``: per population, padded to ``S`` states, the propagator ``prop = exp(A h)``,
``a_step = A h`` and its eigen-decomposition ``vec diag(lam) vinv`` for the sub-step propagators
``E(s) = exp(A s h)``, the input ``u``, the threshold row ``c`` and ``theta``, the reset
``x -> reset x + r``). States are ``x[neuron, :S]``; a padded state has no dynamics, input,
threshold or reset and stays 0. Connections are the dense blocks of :mod:`._cpu_kernels`
(``blk``, ``out_start``/``out_blk``, ``in_blk``, pre-major weights ``w``).

Forward, per sample and step n (the order of docs/engine.md, section 2):
  1. input spikes of step n add ``w u`` to their targets;
  2. every neuron advances ``x_adv = prop x``; a spiking one with ``c . x_adv > theta`` fires at
     ``phi = crossing_phase(c . x, c . x_adv, theta)`` and ends the step at
     ``F(x, phi) = E(1 - phi) (reset E(phi) x + r)``; the record is (n, neuron, phi, x);
  3. the spikes of step n reach their targets at (n+1) h: ``x_t += w E_t(1 - phi) u_t``;
  4. the output population's membrane state is ``trace[n]``.

Backward, the exact adjoint ``lam = dL/dx`` at grid times, in reverse: between spikes
``lam(n) = prop^T lam(n+1)``; a spike's ``G = dL/dphi`` collects its deliveries
``sum_t w lam_t . dE_t`` (``dE_t = -a_step_t E_t(1 - phi) u_t``), its own step
``lam . dF/dphi`` (``dF/dphi = -a_step F + E(1 - phi) reset a_step E(phi) x``) and a first output
spike's ``dL/dt``; the spiking neuron's adjoint becomes ``J^T lam + G dphi/dx`` with
``J = E(1 - phi) reset E(phi)`` and ``dphi/dx = -(c d + g c_rate) / d^2`` (``g = theta - c . x``,
``c_rate = prop^T c - c``, ``d = c . (x_adv - x) = c_rate . x``; 0 when the neuron starts
above threshold, ``phi = 0``); the regulariser adds ``count_scale dL/dC`` to its membrane
adjoint. ``dL/dw = lam_t . E_t(1 - phi) u_t`` at a hidden spike, ``lam_t . u_t`` at an input
spike. States and records are kept in the weights' precision, and so is the arithmetic of the
per-neuron loops (step, threshold test, arrivals: float32 rows stay SIMD, as in the specialised
kernels); a spike's sub-steps, the adjoint and the gradient sums are float64 (complex128 for the
eigen-coordinates).

The module is a template in the number of states: its functions read ``S`` from the global ``NS``,
which is set only in the copies that :func:`kernels` compiles per model size (loops over states
then unroll); the module's own functions have no ``NS`` and never run.
"""

from __future__ import annotations

from typing import NamedTuple

import cmath
import math
import sys
import types
from functools import lru_cache

import numpy as np
from numba import get_thread_id, njit, prange

from ...base.reproducible import kernel_fastmath
from . import _cpu_kernels as K
from . import _neuron_math as M
from ._specialise import source_digest, specialise
from ._cpu_kernels import DELAYED, LEARN_D, N_POST, POST, SUBSTEP, W_OFF  # the connection block's columns
from ._cpu_kernels import _block_end  # one past a connection block's last weight
from ._cpu_kernels import _axpy, _axpy4  # one synaptic row, four summed rows, into a row of states
from ._cpu_kernels import _dot as _dot_rows  # two rows' dot product, summed in float64

_FASTMATH = kernel_fastmath()
# The number of states S of every population (padded): a constant at compile time. This module's
# functions are a template: they run only as the copies that kernels(S) compiles with NS = S.
NS = None
nm = M.compiled(njit(cache=True, fastmath=_FASTMATH, nogil=True, inline="always"))


class Model(NamedTuple):
    """Every population's discretised description, padded to S states (see the module docstring)."""

    prop: np.ndarray  # float64 [n_pop, S, S]
    a_step: np.ndarray  # float64 [n_pop, S, S]
    vec: np.ndarray  # complex128 [n_pop, S, S]
    vinv: np.ndarray  # complex128 [n_pop, S, S]
    lam: np.ndarray  # complex128 [n_pop, S]
    real: np.ndarray  # int8 [n_pop]: 1 where every eigenvalue is real (then vec_re ... hold them)
    vec_re: np.ndarray  # float64 [n_pop, S, S]
    vinv_re: np.ndarray  # float64 [n_pop, S, S]
    vec_t: np.ndarray  # complex128 [n_pop, S, S]: vinv^T (E^T = vinv^T diag(g) vec^T)
    vinv_t: np.ndarray  # complex128 [n_pop, S, S]: vec^T
    vec_re_t: np.ndarray  # float64 [n_pop, S, S]
    vinv_re_t: np.ndarray  # float64 [n_pop, S, S]
    lam_re: np.ndarray  # float64 [n_pop, S]
    u: np.ndarray  # float64 [n_pop, S]
    c: np.ndarray  # float64 [n_pop, S]
    c_rate: np.ndarray  # float64 [n_pop, S]: prop^T c - c (c . (x_adv - x) = c_rate . x)
    theta: np.ndarray  # float64 [n_pop] (inf: never fires)
    reset: np.ndarray  # float64 [n_pop, S, S]
    r: np.ndarray  # float64 [n_pop, S]
    membrane: np.ndarray  # int64 [n_pop]
    count_scale: np.ndarray  # float64 [n_pop]
    spiking: np.ndarray  # int8 [n_pop]
    learn: np.ndarray  # int8 [n_pop]: 1 where the backward pass gives dL/d(a_step) and dL/du
    g_step: np.ndarray  # complex128 [n_pop, S]: exp(lam), the eigen-decays over one step
    n_states: np.ndarray  # int64 [n_pop]: the model's own number of states (the rest is padding)


class Net(NamedTuple):
    pop_off: np.ndarray  # int64 [n_pop + 1]
    pop_of: np.ndarray  # int32 [n_neurons]
    blk: np.ndarray  # int64 [n_conn, N_BLK]
    out_start: np.ndarray
    out_blk: np.ndarray
    in_blk: np.ndarray
    w: np.ndarray
    d_row: np.ndarray  # int64 per synapse: whole steps D of its delay (input synapses: the grid offset)
    d_frac: np.ndarray  # float64 per synapse: the delay's sub-step part f in [0, 1)
    n_ring: int  # grid times the arrival ring holds (0: no delays this call)
    in_arr: np.ndarray  # float64 [n_w or 1, S]: an input synapse's arrival E(r) u (described.input_arrivals)
    in_rate: np.ndarray  # float64 [n_w or 1, S]: its rate A h E(r) u
    in_g: np.ndarray  # complex128 [n_w or 1, S]: its eigen-decays exp(lam r) (learning models' E(r))


class ForwardScratch(NamedTuple):
    """The forward pass's working arrays, one row per worker (a CPU thread, a CUDA thread): the
    per-sample function takes its worker's row and clears what it reads before use."""

    x: np.ndarray  # [n_workers, S, n_tot], the weights' precision: states by rows
    xa: np.ndarray  # [n_workers, S, n_tot], the weights' precision: the states advanced over the step
    u_adv: np.ndarray  # [n_workers, n_tot], the weights' precision: c . x_adv per neuron
    wsc: np.ndarray  # [n_workers, S + 2, S], the weights' precision: a population's prop, an arrival, c
    vec: np.ndarray  # float64 [n_workers, N_VEC, S]: state vectors (xd f y z e rz uq)
    cvec: np.ndarray  # complex128 [n_workers, N_CVEC, S]: cz and the eigen-decays g1 g2 gq
    ring: np.ndarray  # [n_workers, max(n_ring, 1), S, n_tot], the weights' precision


class BackwardScratch(NamedTuple):
    """The backward pass's working arrays, one row per worker (see :class:`ForwardScratch`)."""

    lam: np.ndarray  # float64 [n_workers, 2, S, n_tot]: the adjoint and its previous value
    jump: np.ndarray  # float64 [n_workers, n_tot, S]: a spiking neuron's adjoint after its jump
    vec: np.ndarray  # float64 [n_workers, N_VEC, S]: x0 y z f e de t1 t2 rz uq
    cvec: np.ndarray  # complex128 [n_workers, N_CVEC, S]
    first_rec: np.ndarray  # int64 [n_workers, n_out]: each output neuron's first spike record
    hist: np.ndarray  # float64 [n_workers, max(n_ring, 1), S, n_tot]: the adjoint by grid time
    rmat: np.ndarray  # complex128 [n_workers, S, S, n_tot or 1]: each neuron's R (learnable models)
    mu_row: np.ndarray  # complex128 [n_workers, n_tot or 1]: one eigen coordinate of every adjoint
    wsum: np.ndarray  # float64 [n_workers, n_tot or 1]: a step's input weights per target neuron
    rhist: np.ndarray  # complex128 [n_workers, n_ring or 1, S, S, n_tot or 1]: R by grid time (with delays)
    lsum: np.ndarray  # float64 [n_workers, n_w or 1, S]: input synapses' adjoints at their arrivals, summed


class ModelGrads(NamedTuple):
    """What the backward pass gives for populations whose model learns (``Model.learn``), per
    group of samples: ``gm[:, p, 0]`` the sum over its propagator steps of ``mu nu^T`` (eigen
    coordinates; times ``Phi(1)`` it is dL/dW of those steps), ``gm[:, p, 1]`` dL/dW of the
    sub-step propagators at spikes and arrivals (``W = V^-1 dA h V``), ``gu[:, p]`` dL/du, then
    dL/dr (the reset's offset: what ``reset`` sets and ``jump`` adds) and dL/dtheta."""

    gm: np.ndarray  # complex128 [n_groups, n_pop, 2, S, S]
    gu: np.ndarray  # float64 [n_groups, n_pop, 2 S + 1]: dL/du, dL/dr, dL/dtheta


N_VEC = 12  # state-vector rows of a worker's scratch
N_CVEC = 7  # complex rows


class Records(NamedTuple):
    step: np.ndarray  # int32 [N, capacity]
    nrn: np.ndarray  # int32 [N, capacity]
    phi: np.ndarray  # [N, capacity]
    x: np.ndarray  # [N, capacity, S]: the neuron's state at the start of the step
    n_rec: np.ndarray  # int64 [N]
    overflow: np.ndarray  # int8 [N]


@njit(cache=True, fastmath=_FASTMATH, nogil=True, inline="always")
def _decays(real, lam_re, lam, p, s, g):
    """``g = exp(lam s)``: the eigen-decays of population p over ``s`` steps (real populations
    use the real part only)."""
    for k in range(NS):
        if real[p]:
            g[k] = math.exp(lam_re[p, k] * s)
        else:
            g[k] = cmath.exp(lam[p, k] * s)


@njit(cache=True, fastmath=_FASTMATH, nogil=True, inline="always")
def _apply_real(vec, vinv, p, g, x, out, acc_k):
    """``out = vec[p] diag(g) vinv[p] x`` in real arithmetic (``acc_k``: scratch)."""
    n = NS
    for k in range(n):
        acc = 0.0
        for j in range(n):
            acc += vinv[p, k, j] * x[j]
        acc_k[k] = acc * g[k].real
    for i in range(n):
        acc = 0.0
        for k in range(n):
            acc += vec[p, i, k] * acc_k[k]
        out[i] = acc


@njit(cache=True, fastmath=_FASTMATH, nogil=True, inline="always")
def _apply_complex(vec, vinv, p, g, x, out, z):
    """``out = Re(vec[p] diag(g) vinv[p] x)`` (``z``: complex scratch)."""
    n = NS
    for k in range(n):
        acc = 0j
        for j in range(n):
            acc += vinv[p, k, j] * x[j]
        z[k] = acc * g[k]
    for i in range(n):
        acc = 0j
        for k in range(n):
            acc += vec[p, i, k] * z[k]
        out[i] = acc.real


@njit(cache=True, fastmath=_FASTMATH, nogil=True, inline="always")
def _sub_step(real, vr, vir, vc, vic, p, g, x, out, z, acc_k):
    """``out = E(s) x`` for population p, ``E(s) = exp(A s h) = vec diag(g) vinv`` with ``g`` from
    :func:`_decays` (real: ``vr``, ``vir``; complex: ``vc``, ``vic``); the transposed
    ``E(s)^T = vinv^T diag(g) vec^T`` takes the model's ``*_t`` arrays. ``z``, ``acc_k``:
    complex and real scratch of the states' length. The kernels hand over single arrays, never
    the ``Model`` tuple (with the tuple, the backward pass measured about 1.4x slower)."""
    if real[p]:
        _apply_real(vr, vir, p, g, x, out, acc_k)
    else:
        _apply_complex(vc, vic, p, g, x, out, z)


@njit(cache=True, fastmath=_FASTMATH, nogil=True, inline="always")
def _matvec(m, p, x, out, transpose):
    """``out = m[p] x`` (``transpose``: ``m[p]^T x``)."""
    n = NS
    for i in range(n):
        acc = 0.0
        for j in range(n):
            acc += (m[p, j, i] if transpose else m[p, i, j]) * x[j]
        out[i] = acc


@njit(cache=True, fastmath=_FASTMATH, nogil=True, inline="always")
def _dot(a, p, b):
    """``a[p] . b``."""
    acc = 0.0
    for k in range(NS):
        acc += a[p, k] * b[k]
    return acc


@njit(cache=True, fastmath=_FASTMATH, nogil=True, inline="always")
def _row(a, p, out):
    """``out = a[p]``."""
    for k in range(NS):
        out[k] = a[p, k]


@njit(cache=True, fastmath=_FASTMATH, nogil=True)
def _propagate(m, x, out, j0, j1, transpose):
    """``out[:, j0:j1] = m x[:, j0:j1]`` (``transpose``: ``m^T``) for the neurons ``j0 .. j1 - 1``
    of one population, states by rows: loops over neurons, vectorised; zero entries skipped (the
    first nonzero one writes the row)."""
    n = NS
    for a in range(n):
        o = out[a, j0:j1]
        written = False
        for b in range(n):
            mab = m[b, a] if transpose else m[a, b]
            if mab != 0.0:
                xb = x[b, j0:j1]
                if written:
                    for t in range(j1 - j0):
                        o[t] += mab * xb[t]
                else:
                    for t in range(j1 - j0):
                        o[t] = mab * xb[t]
                    written = True
        if not written:
            o[:] = 0.0


@njit(cache=True, fastmath=_FASTMATH, nogil=True, inline="always")
def _spike_step(real, vr, vir, vc, vic, reset, r, p, x0, g_phi, g_rest, y, z, f, cz, rz):
    """The spiking branch of the step from ``x0``: ``y = E(phi) x0``, ``z = reset y + r``, ``f =
    E(1 - phi) z`` (the state at the step's end; ``g_phi``, ``g_rest``: the decays over ``phi``
    and ``1 - phi``)."""
    _sub_step(real, vr, vir, vc, vic, p, g_phi, x0, y, cz, rz)
    _matvec(reset, p, y, z, False)
    for k in range(NS):
        z[k] += r[p, k]
    _sub_step(real, vr, vir, vc, vic, p, g_rest, z, f, cz, rz)


@njit(cache=True, fastmath=_FASTMATH, nogil=True, inline="always")
def _arrival(real, lam_re, lam_c, vr, vir, vc, vic, u_in, q, s, gq, uq, e, cz, rz):
    """``e = E_q(s) u_q``: a unit arrival in population q, ``s`` steps before the grid time where
    it is applied (``u_q`` itself when ``s = 0``)."""
    _row(u_in, q, uq)
    if s == 0.0:
        for k in range(NS):
            e[k] = uq[k]
        return
    _decays(real, lam_re, lam_c, q, s, gq)
    _sub_step(real, vr, vir, vc, vic, q, gq, uq, e, cz, rz)


@njit(cache=True, fastmath=_FASTMATH, nogil=True, inline="always")
def _arrival_rate(real, lam_re, lam_c, vr, vir, vc, vic, u_in, a_step, q, s, gq, uq, e, de, cz, rz):
    """:func:`_arrival` ``e`` and its rate ``de = A_q h e`` (the arrival's derivative in ``s``)."""
    _arrival(real, lam_re, lam_c, vr, vir, vc, vic, u_in, q, s, gq, uq, e, cz, rz)
    _matvec(a_step, q, e, de, False)


@njit(cache=True, fastmath=_FASTMATH, nogil=True, inline="always")
def _hidden_arrival(n, phi, d_row, d_frac, idx):
    """A hidden spike of step n at phase phi on synapse idx: (grid time where it is applied, steps
    from its arrival to that grid time). It arrives at ``n + phi + D + f``: at ``n + 1 + D`` when
    ``phi + f <= 1``, else one grid time later."""
    f = d_frac[idx]
    if f > 1.0 - phi:
        return n + 2 + d_row[idx], 2.0 - phi - f
    return n + 1 + d_row[idx], 1.0 - phi - f


@njit(cache=True, fastmath=_FASTMATH, nogil=True, inline="always")
def _ring_add(ring, slot, e, wt, j):
    """``w e`` into neuron j's row of the ring's ``slot``."""
    for s in range(NS):
        ring[slot, s, j] += wt * e[s]


@njit(cache=True, fastmath=_FASTMATH, nogil=True)
def _ring_apply(ring, slot, x):
    """Add the arrivals of one grid time to the states and clear its slot."""
    for s in range(NS):
        xs = x[s]
        rs = ring[slot, s]
        for j in range(xs.shape[0]):
            xs[j] += rs[j]
            rs[j] = 0.0


@njit(cache=True, fastmath=_FASTMATH, nogil=True, inline="always")
def _eigen(m, p, x, out):
    """``out = m[p] x`` for a complex ``m`` (``vinv``: eigen coordinates of a state vector;
    ``vinv_t = V^T``: of an adjoint)."""
    n = NS
    for i in range(n):
        acc = 0j
        for k in range(n):
            acc += m[p, i, k] * x[k]
        out[i] = acc


@njit(cache=True, fastmath=_FASTMATH, nogil=True, inline="always")
def _add_frechet(acc, scale, mu, nu, lam, p, g, s):
    """``acc += scale Phi(s) o (mu nu^T)`` with ``Phi_ij(s) = (g_i - g_j) / (lam_i - lam_j)``
    (``s g_i`` where they are equal) and ``g = exp(lam s)``: ``lam^T dE(s) x = sum_ij
    Phi_ij(s) mu_i W_ij nu_j`` for ``mu = V^T lam``, ``nu = V^-1 x`` -- the Frechet derivative of
    ``E(s) = exp(A s h)`` in the eigenbasis (``W = V^-1 dA h V``)."""
    n = NS
    for i in range(n):
        for k in range(n):
            dl = lam[p, i] - lam[p, k]
            if abs(dl) > 1e-12:
                phi_ik = (g[i] - g[k]) / dl
            else:
                phi_ik = s * g[i]
            acc[i, k] += scale * phi_ik * mu[i] * nu[k]


@njit(cache=True, fastmath=_FASTMATH, nogil=True, inline="always")
def _add_input_rows(gm_q, gu_q, rmat, lam, wsum, j0, j1, nu):
    """A step's input arrivals into population q (``wsum[j]``: their weights summed per target
    neuron; each arrives as ``wsum[j] u_q``, eigen coordinates ``nu``): ``gu_q += sum_j wsum[j]
    lam_j``, ``gm_q[a, k] += nu_k sum_j wsum[j] R[a, k, j]``; clears ``wsum`` there."""
    n = nu.shape[0]
    ws = wsum[j0:j1]
    for s in range(n):
        gu_q[s] += _dot_rows(ws, lam[s, j0:j1])
    for a in range(n):
        for k in range(n):
            rr = rmat[a, k, j0:j1]
            acc_t = 0j
            for t in range(j1 - j0):
                acc_t += ws[t] * rr[t]
            gm_q[a, k] += nu[k] * acc_t
    for t in range(j1 - j0):
        ws[t] = 0.0


@njit(cache=True, fastmath=_FASTMATH, nogil=True, inline="always")
def _add_arrival_rows(acc, rmat, w, base, q0, n_post, nu):
    """``acc[a, k] += nu_k sum_t w[base + t] R[a, k, q0 + t]``: arrivals ``w_t x`` (eigen
    coordinates ``nu`` of ``x``) paired with their targets' R."""
    n = nu.shape[0]
    for a in range(n):
        for k in range(n):
            rr = rmat[a, k, q0 : q0 + n_post]
            acc_t = 0j
            for t in range(n_post):
                acc_t += w[base + t] * rr[t]
            acc[a, k] += nu[k] * acc_t


@njit(cache=True, fastmath=_FASTMATH, nogil=True, inline="always")
def _add_arrival_rows_one(acc, rmat, j, nu):
    """``acc[a, k] += nu_k R[a, k, j]``: neuron j's R paired with a state of eigen coordinates nu."""
    n = nu.shape[0]
    for a in range(n):
        for k in range(n):
            acc[a, k] += nu[k] * rmat[a, k, j]


@njit(cache=True, fastmath=_FASTMATH, nogil=True)
def _step_back_rows(rmat, lam, vt, g_step, p, j0, j1, mu_row):
    """``R_ak <- mu_a + exp(lam_k) R_ak`` for the neurons ``j0 .. j1 - 1`` of population p, ``mu =
    V^T lam_j`` (``mu_row``: complex scratch of one entry per neuron); loops over neurons innermost."""
    n = rmat.shape[0]
    m = mu_row[j0:j1]
    for a in range(n):
        for t in range(j1 - j0):
            m[t] = 0.0
        for s in range(n):
            v = vt[p, a, s]
            if v != 0.0:
                ls = lam[s, j0:j1]
                for t in range(j1 - j0):
                    m[t] += v * ls[t]
        for k in range(n):
            g = g_step[p, k]
            r = rmat[a, k, j0:j1]
            for t in range(j1 - j0):
                r[t] = m[t] + g * r[t]


@njit(cache=True, fastmath=_FASTMATH, nogil=True, inline="always")
def _learn_u_and_decay(gm_q, gu_q, sl, g, r, q, nu_u, eig, tmp):
    """Arrivals ``w E_q(r) u_q`` of learning population q whose weighted adjoints at the grid
    time where they are applied sum to ``sl`` (``g = exp(lam r)``, ``nu_u = V^-1 u_q``): their
    u (``gu_q``) and their ``E_q(r)`` (``gm_q[1]``). ``eig``: the model's eigen arrays, ``tmp``:
    scratch vectors (the backward pass's ``learn_eig``, ``learn_tmp``)."""
    real, vrt, virt, vct, vict, vic, lam_c = eig
    su, mu, cz, rz = tmp[1], tmp[2], tmp[4], tmp[5]
    n = sl.shape[0]
    if r > 0.0:
        _sub_step(real, vrt, virt, vct, vict, q, g, sl, su, cz, rz)
        _eigen(vict, q, sl, mu)
        _add_frechet(gm_q[1], 1.0, mu, nu_u, lam_c, q, g, r)
    else:
        for s in range(n):
            su[s] = sl[s]
    for s in range(n):
        gu_q[s] += su[s]


@njit(cache=True, fastmath=_FASTMATH, nogil=True, inline="always")
def _learn_arrival(gm_q, gu_q, lam_g, r_g, j, wt, e, g, r, q, nu_u, eig, tmp):
    """One arrival ``w E_q(r) u_q`` (state ``e``) at neuron j of learning population q, with the
    adjoint ``lam_g`` and the R ``r_g`` of the grid time where it is applied: its u and
    ``E_q(r)`` (:func:`_learn_u_and_decay`) and its pairing with R (``gm_q[0]``)."""
    vic = eig[5]
    sl, nu = tmp[0], tmp[3]
    for s in range(NS):
        sl[s] = wt * lam_g[s, j]
    _learn_u_and_decay(gm_q, gu_q, sl, g, r, q, nu_u, eig, tmp)
    _eigen(vic, q, e, nu)
    for k in range(NS):
        nu[k] *= wt
    _add_arrival_rows_one(gm_q[0], r_g, j, nu)


@njit(cache=True, fastmath=_FASTMATH, nogil=True, inline="always")
def _input_r_in(blk, k, d_frac, idx):
    """The remaining time ``r = 1 - f`` of input synapse idx's arrivals (0 without a sub-step part
    or a delay: they act at their grid time)."""
    return 1.0 - d_frac[idx] if blk[k, DELAYED] and d_frac[idx] > 0.0 else 0.0


@njit(cache=True, fastmath=_FASTMATH, nogil=True)
def input_sums_to_grads(gm, gu, net, model, scratch, wk):
    """The u and ``E_q(r)`` terms of the input arrivals into learning populations since the last
    call, from worker wk's adjoints summed per synapse (``scratch.lsum``; a synapse's ``w``, ``r``
    and ``E_q(r)`` are the same for every spike of a call, so its arrivals' terms are one term of
    their summed adjoint), into ``gm``, ``gu`` (one group's or sample's rows). Each driver clears
    the sums before a group (CPU) or sample (CUDA) and calls this after its backward passes."""
    blk, in_blk, w, d_frac, in_g = net.blk, net.in_blk, net.w, net.d_frac, net.in_g
    learn, u_in, vic = model.learn, model.u, model.vinv
    eig = (model.real, model.vec_re_t, model.vinv_re_t, model.vec_t, model.vinv_t, vic, model.lam)
    lsum = scratch.lsum[wk]
    vec, cvec = scratch.vec[wk], scratch.cvec[wk]
    uq, sl = vec[9], vec[10]
    tmp = (sl, vec[11], cvec[4], cvec[5], cvec[0], vec[8])
    nu_u = cvec[6]
    S = NS
    for kk in range(in_blk.shape[0]):
        k = in_blk[kk]
        q = blk[k, POST]
        if not learn[q] or not (blk[k, DELAYED] or blk[k, LEARN_D]):
            continue
        _row(u_in, q, uq)
        _eigen(vic, q, uq, nu_u)
        for idx in range(blk[k, W_OFF], _block_end(blk, k, w.shape[0])):
            nonzero = False
            for s in range(S):
                sl[s] = w[idx] * lsum[idx, s]
                nonzero = nonzero or lsum[idx, s] != 0.0
            if nonzero:
                _learn_u_and_decay(gm[q], gu[q], sl, in_g[idx], _input_r_in(blk, k, d_frac, idx), q, nu_u, eig, tmp)


@njit(cache=True, fastmath=_FASTMATH, nogil=True, inline="always")
def _copy_r(src, dst):
    """``dst[:] = src`` for two ``[S, S, n]`` arrays."""
    for a in range(src.shape[0]):
        for k in range(src.shape[1]):
            for j in range(src.shape[2]):
                dst[a, k, j] = src[a, k, j]


@njit(cache=True, fastmath=_FASTMATH, nogil=True, inline="always")
def _copy_states(src, dst):
    """``dst[:] = src`` for two ``[S, n]`` arrays (a loop: no temporary, on either backend)."""
    for s in range(src.shape[0]):
        for j in range(src.shape[1]):
            dst[s, j] = src[s, j]


@njit(cache=True, fastmath=_FASTMATH, nogil=True, inline="always")
def _pair(lam, j, e):
    """``lam[:, j] . e``: neuron j's adjoint (states by rows) against a state vector."""
    acc = 0.0
    for s in range(NS):
        acc += lam[s, j] * e[s]
    return acc


@njit(cache=True, fastmath=_FASTMATH, nogil=True)
def _forward_one(b, spikes, net, model, trace, t_first, counts, rec, scratch, wk):
    """Sample b's forward pass in worker ``wk``'s rows of ``scratch`` (:class:`ForwardScratch`)."""
    in_off, in_step, in_ch, n_steps = spikes
    pop_off, pop_of, blk, out_start, out_blk, in_blk, w, d_row, d_frac, n_ring, in_arr, _, _ = net
    rec_step, rec_nrn, rec_phi, rec_x, n_rec, overflow = rec
    n_pop = pop_off.shape[0] - 1
    n_tot = pop_off[n_pop]
    o0 = pop_off[n_pop - 1]
    S = NS
    cap = rec_step.shape[1]
    # the model's arrays as locals, handed to the helpers one by one (see _sub_step)
    real, lam_re, lam_c = model.real, model.lam_re, model.lam
    vr, vir, vc, vic = model.vec_re, model.vinv_re, model.vec, model.vinv
    reset, r_off, u_in = model.reset, model.r, model.u
    prop, c_row, theta_p = model.prop, model.c, model.theta
    membrane, spiking_p = model.membrane, model.spiking
    x = scratch.x[wk]  # states by rows: a population's slice is contiguous
    x[:] = 0.0
    xa = scratch.xa[wk]
    u_adv = scratch.u_adv[wk]  # c . x_adv per neuron
    vec, cvec = scratch.vec[wk], scratch.cvec[wk]
    xd, f, y, z, e, rz, uq = vec[0], vec[1], vec[2], vec[3], vec[4], vec[5], vec[6]  # uq: a target's input
    # what the per-neuron loops multiply by, in the weights' precision (float32 rows stay SIMD)
    wsc = scratch.wsc[wk]
    prop_w, e_w, c_w = wsc[:S], wsc[S], wsc[S + 1]
    cz = cvec[0]
    g1, g2, gq = cvec[1], cvec[2], cvec[3]  # eigen-decays over phi, 1 - phi, and a target's 1 - phi
    mem_out = membrane[n_pop - 1]
    # delayed arrivals by grid time G, in slot G % n_ring (every arrival is at most n_ring - 1
    # grid times ahead); applied and cleared at the end of step G - 1, and at the start of step G
    # for input arrivals placed there with no whole step of delay
    ring = scratch.ring[wk]
    ring[:] = 0.0
    nr = 0
    ip = in_off[b]
    i_end = in_off[b + 1]
    for n in range(n_steps):
        # 1. input spikes of step n (undelayed rows summed four at a time: fewer passes over x)
        i0 = ip
        while ip < i_end and in_step[ip] == n:
            ip += 1
        for kk in range(in_blk.shape[0]):
            k = in_blk[kk]
            q, n_post, w0 = blk[k, POST], blk[k, N_POST], blk[k, W_OFF]
            q0 = pop_off[q]
            if blk[k, DELAYED]:  # each synapse's own arrival, at n + D (+1 with a sub-step part)
                for sp in range(i0, ip):
                    base = w0 + in_ch[sp] * n_post
                    for t in range(n_post):
                        g_at = n + d_row[base + t]
                        if g_at <= n_steps:
                            _ring_add(ring, g_at % n_ring, in_arr[base + t], w[base + t], q0 + t)
                continue
            for s in range(S):
                e_w[s] = u_in[q, s]
            for s in range(S):
                us = e_w[s]
                if us != 0.0:
                    xs = x[s, q0 : q0 + n_post]
                    sp = i0
                    while sp + 4 <= ip:
                        a0 = w0 + in_ch[sp] * n_post
                        a1 = w0 + in_ch[sp + 1] * n_post
                        a2 = w0 + in_ch[sp + 2] * n_post
                        a3 = w0 + in_ch[sp + 3] * n_post
                        _axpy4(
                            xs, w[a0 : a0 + n_post], w[a1 : a1 + n_post], w[a2 : a2 + n_post], w[a3 : a3 + n_post], us
                        )
                        sp += 4
                    while sp < ip:
                        a0 = w0 + in_ch[sp] * n_post
                        _axpy(xs, w[a0 : a0 + n_post], us)
                        sp += 1
        if n_ring:  # input arrivals due at n h
            _ring_apply(ring, n % n_ring, x)
        # 2. advance, threshold, restart
        step_start = nr
        for p in range(n_pop):
            j0, j1 = pop_off[p], pop_off[p + 1]
            for a in range(S):
                for s in range(S):
                    prop_w[a, s] = prop[p, a, s]
            _propagate(prop_w, x, xa, j0, j1, False)
            if spiking_p[p] != 0:
                theta = theta_p[p]
                uj = u_adv[j0:j1]
                uj[:] = 0.0
                for s in range(S):
                    c_w[s] = c_row[p, s]
                for s in range(S):
                    cs = c_w[s]
                    if cs != 0.0:
                        xs = xa[s, j0:j1]
                        for t in range(j1 - j0):
                            uj[t] += cs * xs[t]
                for j in range(j0, j1):
                    u1 = u_adv[j]
                    if u1 > theta:
                        for s in range(S):
                            xd[s] = x[s, j]
                        phi = nm.crossing_phase(_dot(c_row, p, xd), u1, theta)
                        if nr >= cap:
                            overflow[b] = 1
                            n_rec[b] = nr
                            return
                        rec_step[b, nr] = n
                        rec_nrn[b, nr] = j
                        rec_phi[b, nr] = phi
                        for s in range(S):
                            rec_x[b, nr, s] = x[s, j]
                        nr += 1
                        _decays(real, lam_re, lam_c, p, phi, g1)
                        _decays(real, lam_re, lam_c, p, 1.0 - phi, g2)
                        _spike_step(real, vr, vir, vc, vic, reset, r_off, p, xd, g1, g2, y, z, f, cz, rz)
                        for s in range(S):
                            xa[s, j] = f[s]
                        if j >= o0:
                            if t_first[b, j - o0] >= n_steps:
                                t_first[b, j - o0] = n + phi
                        else:
                            counts[b, j] += 1.0
        x, xa = xa, x  # the advanced states are the states (every population wrote its rows)
        # 3. deliver the spikes of step n at (n+1) h
        for r in range(step_start, nr):
            j = rec_nrn[b, r]
            p = pop_of[j]
            phi = rec_phi[b, r]
            row = j - pop_off[p]
            for kk in range(out_start[p], out_start[p + 1]):
                k = out_blk[kk]
                q, n_post = blk[k, POST], blk[k, N_POST]
                q0 = pop_off[q]
                base = blk[k, W_OFF] + row * n_post
                if blk[k, DELAYED] and blk[k, SUBSTEP]:  # each synapse its own remaining decay
                    for t in range(n_post):
                        g_at, r_d = _hidden_arrival(n, phi, d_row, d_frac, base + t)
                        if g_at <= n_steps:
                            _arrival(real, lam_re, lam_c, vr, vir, vc, vic, u_in, q, r_d, gq, uq, e, cz, rz)
                            _ring_add(ring, g_at % n_ring, e, w[base + t], q0 + t)
                    continue
                _arrival(real, lam_re, lam_c, vr, vir, vc, vic, u_in, q, 1.0 - phi, gq, uq, e, cz, rz)
                if blk[k, DELAYED]:  # whole steps: the spike's own decays, D grid times later
                    for t in range(n_post):
                        g_at = n + 1 + d_row[base + t]
                        if g_at <= n_steps:
                            _ring_add(ring, g_at % n_ring, e, w[base + t], q0 + t)
                    continue
                for s in range(S):
                    e_w[s] = e[s]
                for s in range(S):
                    es = e_w[s]
                    if es != 0.0:
                        _axpy(x[s, q0 : q0 + n_post], w[base : base + n_post], es)
        if n_ring:  # delayed arrivals due at (n+1) h
            _ring_apply(ring, (n + 1) % n_ring, x)
        # 4. the output's membrane state at (n+1) h
        for o in range(n_tot - o0):
            trace[b, n, o] = x[mem_out, o0 + o]
    n_rec[b] = nr


@njit(parallel=True, cache=True, fastmath=_FASTMATH)
def forward(spikes, net, model, trace, t_first, counts, rec, scratch):
    """The batch's forward pass, a prange task per sample (``scratch``: a row per thread)."""
    for b in prange(rec.n_rec.shape[0]):
        _forward_one(b, spikes, net, model, trace, t_first, counts, rec, scratch, get_thread_id())


@njit(cache=True, fastmath=_FASTMATH, nogil=True)
def _backward_one(b, spikes, net, model, rec, g_trace, g_tfirst, g_counts, gw, gd, gm, gu, scratch, wk):
    """Sample b's backward pass, adding to the gradient rows ``gw``, ``gd`` and, for learning
    models, ``gm``, ``gu`` (:class:`ModelGrads`' rows), in worker ``wk``'s rows of ``scratch``
    (:class:`BackwardScratch`)."""
    in_off, in_step, in_ch, n_steps = spikes
    pop_off, pop_of, blk, out_start, out_blk, in_blk, w, d_row, d_frac, n_ring, in_arr, in_rate, in_g = net
    rec_step, rec_nrn, rec_phi, rec_x, n_rec, _ = rec
    n_pop = pop_off.shape[0] - 1
    n_tot = pop_off[n_pop]
    o0 = pop_off[n_pop - 1]
    n_out = n_tot - o0
    S = NS
    # the model's arrays as locals (see _forward_one)
    real, lam_re, lam_c = model.real, model.lam_re, model.lam
    vr, vir, vc, vic = model.vec_re, model.vinv_re, model.vec, model.vinv
    vrt, virt, vct, vict = model.vec_re_t, model.vinv_re_t, model.vec_t, model.vinv_t
    vinv_t_c = vict  # V^T (complex): an adjoint's eigen coordinates
    reset, r_off, a_step, u_in = model.reset, model.r, model.a_step, model.u
    prop, c_row, c_rate, theta_p = model.prop, model.c, model.c_rate, model.theta
    membrane, count_scale = model.membrane, model.count_scale
    learn, g_step = model.learn, model.g_step
    lam = scratch.lam[wk, 0]  # states by rows, like the forward pass's x
    lam[:] = 0.0
    lam_prev = scratch.lam[wk, 1]
    jump = scratch.jump[wk]
    vec, cvec = scratch.vec[wk], scratch.cvec[wk]
    x0, y, z, f, e, de, t1, t2, rz = vec[0], vec[1], vec[2], vec[3], vec[4], vec[5], vec[6], vec[7], vec[8]
    uq = vec[9]  # a target population's input vector
    sl, su = vec[10], vec[11]  # weighted adjoint sums of a spike's targets, and its input's adjoint
    cz = cvec[0]
    g1, g2, gq = cvec[1], cvec[2], cvec[3]  # eigen-decays over phi, 1 - phi, and a target's 1 - phi
    mu, nu, nu2 = cvec[4], cvec[5], cvec[6]  # eigen coordinates of an adjoint and of states
    # learning models: each neuron's R (R_ak sum_{steps} ... = the steps' sum of mu_a nu_k, paired
    # with the state where its segment starts; docs/engine.md, "Learnable model parameters")
    rmat = scratch.rmat[wk]
    mu_row = scratch.mu_row[wk]
    wsum = scratch.wsum[wk]  # a step's input weights per target neuron (learning populations)
    rhist = scratch.rhist[wk]  # R by grid time, as hist holds the adjoint (delays)
    lsum = scratch.lsum[wk]  # each input synapse's adjoints at its arrivals, summed (input_sums_to_grads)
    learn_eig = (real, vrt, virt, vct, vict, vic, lam_c)  # what _learn_arrival reads of the model
    learn_tmp = (sl, su, mu, nu, cz, rz)
    any_learn = False
    for p in range(n_pop):
        if learn[p]:
            any_learn = True
    if any_learn:
        rmat[:] = 0.0
        wsum[:] = 0.0
    mem_out = membrane[n_pop - 1]
    first_rec = scratch.first_rec[wk]
    first_rec[:] = -1
    for r in range(n_rec[b]):
        j = rec_nrn[b, r]
        if j >= o0 and first_rec[j - o0] < 0:
            first_rec[j - o0] = r
    # the adjoint by grid time G in slot G % n_ring, for the delayed arrivals applied there: the
    # value after the readout's term of step G - 1 (where hidden arrivals act), overwritten at
    # step G by the value at the start of that step (where undelayed-in-steps input arrivals act)
    hist = scratch.hist[wk]  # every slot is written before it is read
    if n_ring and any_learn:  # R(G) is stored as the backward pass reaches G; R(n_steps) = 0
        rhist[n_steps % n_ring] = 0.0
    r = n_rec[b] - 1
    ip = in_off[b + 1] - 1
    for n in range(n_steps - 1, -1, -1):
        # lam holds dL/d(state at (n+1) h); the readout drives the output's membrane state
        for o in range(n_out):
            lam[mem_out, o0 + o] += g_trace[b, n, o]
        if n_ring:
            _copy_states(lam, hist[(n + 1) % n_ring])
        r_hi = r
        while r >= 0 and rec_step[b, r] == n:
            r -= 1
        # the spikes of step n (they read adjoints at (n+1) h only)
        for sp in range(r + 1, r_hi + 1):
            j = rec_nrn[b, sp]
            p = pop_of[j]
            phi = rec_phi[b, sp]
            row = j - pop_off[p]
            for s in range(S):
                x0[s] = rec_x[b, sp, s]
            g_phi = 0.0
            for kk in range(out_start[p], out_start[p + 1]):
                k = out_blk[kk]
                q, n_post = blk[k, POST], blk[k, N_POST]
                q0 = pop_off[q]
                base = blk[k, W_OFF] + row * n_post
                if blk[k, DELAYED]:  # each synapse's arrival reads the adjoint where it is applied
                    substep = blk[k, SUBSTEP] != 0
                    r_d = 1.0 - phi
                    if not substep:
                        _arrival_rate(
                            real, lam_re, lam_c, vr, vir, vc, vic, u_in, a_step, q, r_d, gq, uq, e, de, cz, rz
                        )
                    if learn[q]:
                        _row(u_in, q, uq)
                        _eigen(vic, q, uq, nu2)
                    for t in range(n_post):
                        idx = base + t
                        g_at = n + 1 + d_row[idx]
                        if substep:
                            g_at, r_d = _hidden_arrival(n, phi, d_row, d_frac, idx)
                            if g_at <= n_steps:
                                _arrival_rate(
                                    real, lam_re, lam_c, vr, vir, vc, vic, u_in, a_step, q, r_d, gq, uq, e, de, cz, rz
                                )
                        if g_at <= n_steps:  # later ones fall after the last step: no effect
                            lam_g = hist[g_at % n_ring]
                            gw[idx] += _pair(lam_g, q0 + t, e)
                            term = -w[idx] * _pair(lam_g, q0 + t, de)  # d/d(arrival time)
                            g_phi += term
                            gd[idx] += term
                            if learn[q]:
                                _learn_arrival(
                                    gm[q],
                                    gu[q],
                                    lam_g,
                                    rhist[g_at % n_ring],
                                    q0 + t,
                                    w[idx],
                                    e,
                                    gq,
                                    r_d,
                                    q,
                                    nu2,
                                    learn_eig,
                                    learn_tmp,
                                )
                    continue
                _arrival_rate(real, lam_re, lam_c, vr, vir, vc, vic, u_in, a_step, q, 1.0 - phi, gq, uq, e, de, cz, rz)
                if blk[k, LEARN_D]:  # delays all 0 this call: dL/d(delay) is the same time derivative
                    for t in range(n_post):
                        gd[base + t] -= w[base + t] * _pair(lam, q0 + t, de)
                for s in range(S):
                    es, des = e[s], de[s]
                    if es != 0.0:
                        _axpy(gw[base : base + n_post], lam[s, q0 : q0 + n_post], es)
                    if des != 0.0:
                        g_phi -= des * _dot_rows(w[base : base + n_post], lam[s, q0 : q0 + n_post])
                if learn[q]:  # w_t E_q(1 - phi) u_q: its u, its sub-step propagator, its targets' R
                    for s in range(S):
                        sl[s] = _dot_rows(w[base : base + n_post], lam[s, q0 : q0 + n_post])
                    _sub_step(real, vrt, virt, vct, vict, q, gq, sl, su, cz, rz)
                    for s in range(S):
                        gu[q, s] += su[s]
                    _eigen(vinv_t_c, q, sl, mu)
                    _eigen(vic, q, uq, nu)
                    _add_frechet(gm[q, 1], 1.0, mu, nu, lam_c, q, gq, 1.0 - phi)
                    _eigen(vic, q, e, nu)
                    _add_arrival_rows(gm[q, 0], rmat, w, base, q0, n_post, nu)
            # its own step: dF/dphi = -a_step f + E(1 - phi) reset a_step y
            _decays(real, lam_re, lam_c, p, phi, g1)
            _decays(real, lam_re, lam_c, p, 1.0 - phi, g2)
            _spike_step(real, vr, vir, vc, vic, reset, r_off, p, x0, g1, g2, y, z, f, cz, rz)
            _matvec(a_step, p, y, t1, False)
            _matvec(reset, p, t1, t2, False)
            _sub_step(real, vr, vir, vc, vic, p, g2, t2, t1, cz, rz)
            _matvec(a_step, p, f, t2, False)
            for s in range(S):
                g_phi += lam[s, j] * (t1[s] - t2[s])
            if j >= o0 and first_rec[j - o0] == sp:
                g_phi += g_tfirst[b, j - o0]
            # J^T lam = E(phi)^T reset^T E(1 - phi)^T lam
            for s in range(S):
                t1[s] = lam[s, j]
            if learn[p]:
                # the later segment ends here: its R pairs with the state after the spike, f
                _eigen(vic, p, f, nu)
                _add_arrival_rows_one(gm[p, 0], rmat, j, nu)
                # E(1 - phi) acting on z = reset E(phi) x0 + r
                _eigen(vinv_t_c, p, t1, mu)
                _eigen(vic, p, z, nu)
                _add_frechet(gm[p, 1], 1.0, mu, nu, lam_c, p, g2, 1.0 - phi)
            _sub_step(real, vrt, virt, vct, vict, p, g2, t1, t2, cz, rz)
            if learn[p]:  # F = E(1 - phi) (reset E(phi) x0 + r): dL/dr = E(1 - phi)^T lam
                for s in range(S):
                    gu[p, S + s] += t2[s]
            _matvec(reset, p, t2, t1, True)
            if learn[p]:  # E(phi) acting on x0, seen by reset^T E(1 - phi)^T lam
                _eigen(vinv_t_c, p, t1, mu)
                _eigen(vic, p, x0, nu2)
                _add_frechet(gm[p, 1], 1.0, mu, nu2, lam_c, p, g1, phi)
            _sub_step(real, vrt, virt, vct, vict, p, g1, t1, t2, cz, rz)
            if phi > 0.0:
                gap = theta_p[p] - _dot(c_row, p, x0)
                d = _dot(c_rate, p, x0)
                scale = g_phi / (d * d)
                for s in range(S):
                    t2[s] -= scale * (c_row[p, s] * d + gap * c_rate[p, s])
                if learn[p]:  # phi = gap / c . (exp(A h) x0 - x0) moves with exp(A h) and with theta
                    for s in range(S):
                        sl[s] = c_row[p, s]
                    _eigen(vinv_t_c, p, sl, mu)
                    _add_frechet(gm[p, 1], -scale * gap, mu, nu2, lam_c, p, g_step[p], 1.0)
                    gu[p, 2 * S] += g_phi / d
            if j < o0:  # the spike-count regulariser's kick (docs/engine.md, section 7)
                t2[membrane[p]] += count_scale[p] * g_counts[b, j]
            for s in range(S):
                jump[j, s] = t2[s]
        # back over the step: the transposed propagator, or the spike's jump
        if any_learn:  # R(n) = mu(n) + R(n + 1) diag(exp(lam)), mu(n) = V^T lam(n + 1); 0 where a spike ends a segment
            for p in range(n_pop):
                if learn[p]:
                    _step_back_rows(rmat, lam, vinv_t_c, g_step, p, pop_off[p], pop_off[p + 1], mu_row)
            for sp in range(r + 1, r_hi + 1):
                j = rec_nrn[b, sp]
                if learn[pop_of[j]]:
                    for a in range(S):
                        for k in range(S):
                            rmat[a, k, j] = 0.0
        for p in range(n_pop):
            _propagate(prop[p], lam, lam_prev, pop_off[p], pop_off[p + 1], True)
        lam, lam_prev = lam_prev, lam
        for sp in range(r + 1, r_hi + 1):
            j = rec_nrn[b, sp]
            for s in range(S):
                lam[s, j] = jump[j, s]
        # input spikes of step n: their weights' gradient reads lam at n h (delayed: where they act)
        if n_ring:
            _copy_states(lam, hist[n % n_ring])
            if any_learn:
                _copy_r(rmat, rhist[n % n_ring])
        i_hi = ip
        while ip >= in_off[b] and in_step[ip] == n:
            for kk in range(in_blk.shape[0]):
                k = in_blk[kk]
                q, n_post = blk[k, POST], blk[k, N_POST]
                q0 = pop_off[q]
                base = blk[k, W_OFF] + in_ch[ip] * n_post
                if blk[k, DELAYED] or blk[k, LEARN_D]:
                    if learn[q]:
                        _row(u_in, q, uq)
                        _eigen(vic, q, uq, nu2)
                    for t in range(n_post):
                        idx = base + t
                        g_at = n + d_row[idx] if blk[k, DELAYED] else n  # no delay: at n h
                        if g_at <= n_steps:
                            lam_g = hist[g_at % n_ring] if blk[k, DELAYED] else lam
                            gw[idx] += _pair(lam_g, q0 + t, in_arr[idx])
                            gd[idx] -= w[idx] * _pair(lam_g, q0 + t, in_rate[idx])
                            if learn[q]:  # its adjoint summed per synapse (input_sums_to_grads), R paired here
                                for s in range(S):
                                    lsum[idx, s] += lam_g[s, q0 + t]
                                gi = in_g[idx]  # V^-1 E(r) u = exp(lam r) o V^-1 u
                                for s in range(S):
                                    nu[s] = w[idx] * gi[s] * nu2[s]
                                r_g = rhist[g_at % n_ring] if blk[k, DELAYED] else rmat
                                _add_arrival_rows_one(gm[q, 0], r_g, q0 + t, nu)
                    continue
                for s in range(S):
                    us = u_in[q, s]
                    if us != 0.0:
                        _axpy(gw[base : base + n_post], lam[s, q0 : q0 + n_post], us)
                if learn[q]:  # w_t u_q arrives undecayed: summed per target, paired once per step below
                    _axpy(wsum[q0 : q0 + n_post], w[base : base + n_post], 1.0)
            ip -= 1
        if any_learn and ip < i_hi:  # the step's input arrivals: their u, their targets' R
            for kk in range(in_blk.shape[0]):
                q = blk[in_blk[kk], POST]
                if learn[q]:
                    _row(u_in, q, uq)
                    _eigen(vic, q, uq, nu)
                    _add_input_rows(gm[q, 0], gu[q], rmat, lam, wsum, pop_off[q], pop_off[q + 1], nu)


@njit(parallel=True, cache=True, fastmath=_FASTMATH)
def backward(spikes, net, model, rec, g_trace, g_tfirst, g_counts, gw, gd, grads, group_off, scratch):
    """Per group of consecutive samples (``group_off``), its weight gradient in ``gw[group]`` and
    its delay gradient (per step of delay) in ``gd[group]`` (one column without learnable delays;
    float64, summed in sample order: independent of the thread count). ``scratch``: a row per
    thread."""
    gm, gu = grads
    for g in prange(group_off.shape[0] - 1):
        gw[g, :] = 0.0
        gd[g, :] = 0.0
        gm[g] = 0.0
        gu[g, :] = 0.0
        wk = get_thread_id()
        scratch.lsum[wk][:] = 0.0
        for b in range(group_off[g], group_off[g + 1]):
            _backward_one(
                b, spikes, net, model, rec, g_trace, g_tfirst, g_counts, gw[g], gd[g], gm[g], gu[g], scratch, wk
            )
        input_sums_to_grads(gm[g], gu[g], net, model, scratch, wk)


def _own(name: str, obj) -> bool:
    return obj.py_func.__module__ == __name__


@lru_cache(maxsize=None)
def kernels(n_states: int) -> types.SimpleNamespace:
    """This module's ``forward`` and ``backward`` for models padded to ``n_states`` states: every
    function of the module compiled with ``NS = n_states`` (:func:`._specialise.specialise`), and
    cached on disk under a name that carries ``n_states`` and the hash of the sources it inlines."""
    if not isinstance(n_states, int) or n_states < 1:
        raise ValueError(f"a described model has at least one state, got n_states={n_states!r}")
    here = sys.modules[__name__]
    tag = f"S{n_states}_{source_digest([M.__file__, K.__file__])}"  # numba itself tracks this file

    def compile_copy(obj, copy):
        options = {key: value for key, value in obj.targetoptions.items() if key != "nopython"}
        return njit(cache=True, **options)(copy)

    namespace = specialise(here, {"NS": n_states}, compile_copy, select=_own, tag=tag)
    return types.SimpleNamespace(forward=namespace["forward"], backward=namespace["backward"])


__all__ = ["Model", "Net", "Records", "ForwardScratch", "BackwardScratch", "ModelGrads", "kernels"]
