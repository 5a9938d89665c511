"""Compiled forward and Eventprop backward kernels (numba, CPU, parallel over samples).

Notation follows ``eventkit.engine.neurons``: per population p the coefficient row ``coef[p]``
holds alpha, beta, kappa, b0, c, hm, hs, theta at the column indices named below (``ALPHA`` ...;
numba folds the module constants into the indexing). All neurons of all populations share one
state vector (``pop_off`` gives each population's slice; the last population is the output).
Connections are dense blocks ``blk[k] = (pre_pop, post_pop, w_off, n_post, delayed, learn_d)`` whose weights are
stored transposed (pre-major) at ``w[w_off : w_off + n_pre * n_post]`` so that a spike of
presynaptic neuron ``j`` touches one contiguous row; ``pre_pop = -1`` is the input population.

``spiking[p]``: 0 never fires, 1 fires at the interpolated sub-step time, 2 fires on the grid
(the spike acts at the end of its step, as on a chip; see ``LoihiCUBA``).

Per-neuron time constants: ``coef`` goes on past the populations' rows with one row per neuron of
every population ``p`` with ``hetero[p] = 1``; ``crow[j]`` is neuron j's row (its population's
otherwise). Such a neuron steps, restarts and crosses with its own row; an arrival in such a
population computes each target's remaining decays per synapse (``nm.decay_series``, from the
targets' ``hs, hm, c`` copied per call by :func:`_neuron_columns`), delayed or not, in target order;
its gradient terms go to the target's row. Columns read per population (``b0``, ``theta``, the
adaptation) are the same in all of a population's rows.

Forward, per sample and step n (grid time n h -> (n+1) h):
  1. input spikes of step n add ``b0 * w`` to the targets' synaptic current ``i``;
  2. every neuron advances ``v <- alpha v + kappa i``, ``i <- beta i``; a spiking neuron whose
     advanced ``v`` exceeds ``theta`` fires at ``phi = (theta - v)/(v_adv - v)`` and restarts
     ``v = R(phi) i``; the spike is recorded as (n, neuron, phi, v, i);
  3. spikes of step n reach their targets at (n+1) h: ``i += w b(phi)``, ``v += w e(phi)``;
  4. the output voltage at (n+1) h is written to ``trace[n]``.
Only the spike records and the output trace are kept: memory O(spikes + T x n_out).

Backward runs the exact adjoint of that map in reverse, all populations in lock-step:
``lam_v = dL/dv``, ``lam_i = dL/di`` at grid times. Between spikes
``lam_v(n) = alpha lam_v(n+1)``, ``lam_i(n) = kappa lam_v(n+1) + beta lam_i(n+1)``; at a spike
the jump replaces the spiking neuron's adjoint by ``G dphi/dv``, ``G dphi/di + R lam_v + beta lam_i``
where ``G = dL/dphi`` collects the targets' adjoints through ``b'(phi)``, ``e'(phi)`` and the
neuron's own restart ``R'(phi)``. Weight gradients are accumulated at presynaptic spikes:
``dL/dw = lam_i b + lam_v e`` (hidden spikes) and ``b0 lam_i`` (input spikes). At each hidden
spike, the spike-count regulariser adds ``tau_mem * dL/dC`` to the replaced ``lam_v``: a
surrogate kick, not a gradient (counts are piecewise constant; docs/engine.md, section 7).

Delays (blocks with ``blk[k, DELAYED] = 1``). A spike at ``tau = n + phi`` (in steps) reaches
target m at ``tau + delta`` with ``delta = D + f`` (``D`` whole steps, ``0 <= f < 1``, ``d_frac``;
per synapse). It is applied at the grid time ``G = n + 1 + D`` (``phi + f <= 1``) or
``n + 2 + D`` (otherwise) with the exact remaining decay over ``r = G - tau``:
``beta^r = beta^(1-phi) beta^(-f)`` (times ``beta`` in the second case; ``d_bm = beta^(-f)``,
``d_am = alpha^(-f)`` are precomputed per synapse, so a spike costs no exp per synapse). An input
spike of step s arrives at ``s + delta``: grid time ``s + D`` (``+ 1`` with a sub-step part) with ``d_bm = beta^r``,
``d_am = alpha^r`` fixed per synapse (input rows store these instead; the forward pass turns them
into each input synapse's arrival once per call, :func:`_call_arrivals`). Arrivals wait in a linear
window of ``2 n_slots`` grid times (``n_slots = ceil(max delta) + 1``), ``(i, v)`` interleaved per
neuron, one row of ``stride = 2 n_neurons`` values per grid time; row r holds grid time
``first + r``. Each synapse has a precomputed unsigned offset ``d_off = D stride + 2 target``
(input rows: their grid offset instead of D), so an arrival is one add at ``row0 + d_off`` (plus
one row when a sub-step arrival falls into the following step): no modulo, branch or signed index
per synapse. The row of grid time n is applied (and cleared) at step n; when n reaches
``first + n_slots`` the upper half slides down (``first += n_slots``), so every arrival, at most
``n_slots - 1`` rows ahead, lands inside the window. The window is one per worker thread, kept
between calls and cleared per sample; input arrivals due at the current grid time (delay 0) are
added before the step, like undelayed input. Backward keeps the adjoint pair ``(lam_i, lam_v)`` of
every grid time in the same window (its lower half slides up every ``n_slots`` steps; grid times
after the last step read 0), so an arrival at G reads ``lam(G)``; its sensitivity
``w (lam_i b' + lam_v e')`` (derivative in ``tau``) is the presynaptic ``dL/dphi`` term and, per
synapse, ``dL/d delta`` (``gd``, per step). With ``delta = 0`` this is exactly the undelayed
delivery. An input synapse's factors (its fixed decays, ``b0``, ``w``) are the same for every spike
of a call, so an input spike only adds the adjoint pair at its arrivals to the synapse
(:func:`_gather_adjoint`: ``lam_i`` into ``gw``, ``lam_v`` into ``gd``) and :func:`_input_grads`
applies the factors once per group of samples, after its pass. A hidden spike's arrival factors
are rounded to the weights' precision before the per-synapse loop, as in the undelayed path.
Whether a hidden spike's synapse arrives within the step or in the next depends on its sub-step
part and the spike's phase (``phi + f > 1``), so the host stores each presynaptic row of such a
connection sorted by sub-step part (``CpuBackend.inputs``, which puts the gradients back in the
weights' order): one binary search per spike splits the row into the two runs, and neither
loop tests a synapse.
Blocks with ``LEARN_D = 1`` but no delay this call (all delays 0) run the undelayed code and
still accumulate ``gd``. Blocks whose delays are all whole steps this call (``SUBSTEP = 0``:
round mode, or exact mode on integer delays) run lean loops (:func:`_deliver_whole`,
:func:`_adjoint_whole`): no synapse arrives late, so every synapse of a spike lands with the
spike's own decays (input spikes: none, and no voltage jump) and only ``d_off`` and ``w`` are
read per synapse.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import get_thread_id, njit, prange

from ...base.reproducible import kernel_fastmath
from . import _neuron_math as M

# fast-math flags by trainer.reproducible: none in strict mode (eventkit/base/reproducible.py)
_FASTMATH = kernel_fastmath()

# the shared neuron and synapse math (_neuron_math), compiled into the loops below
nm = M.compiled(njit(cache=True, fastmath=_FASTMATH, nogil=True, inline="always"))

# columns of a population's coefficient row (see eventkit.engine.backends.cpu.coefficient_rows)
ALPHA, BETA, KAPPA, B0, C, HM, HS, THETA, RHO_A, HA, DELTA_A = range(11)
N_COEF = 11
# columns of a connection block
PRE, POST, W_OFF, N_POST, DELAYED, LEARN_D, SUBSTEP = range(7)
N_BLK = 7
# unsigned index steps of the delay window (a signed one costs a negative-index select per access)
_ONE = np.uint64(1)
_ZERO = np.uint64(0)


class Spikes(NamedTuple):
    """A batch's input spikes, CSR by sample (``SpikeData``'s arrays), and the steps it runs."""

    offsets: np.ndarray  # int64 [N + 1]: sample b's spikes are offsets[b] .. offsets[b + 1] - 1
    steps: np.ndarray  # int32: each spike's step (ascending within a sample)
    channels: np.ndarray  # int32: each spike's input channel
    n_steps: int


class Net(NamedTuple):
    """The network of one call: populations, connection blocks, weights and delay tables."""

    pop_off: np.ndarray  # int64 [n_pop + 1]: population p is neurons pop_off[p] .. pop_off[p + 1] - 1
    pop_of: np.ndarray  # int32 [n_neurons]: each neuron's population
    coef: np.ndarray  # [n_pop, N_COEF]: each population's coefficient row (ALPHA ...)
    spiking: np.ndarray  # int8 [n_pop]: 0 never fires, 1 interpolated spike times, 2 grid timing
    tau_mem: np.ndarray  # [n_pop]: the spike-count regulariser's scale (backward only)
    blk: np.ndarray  # int64 [n_conn, N_BLK]: connection blocks (PRE ... SUBSTEP)
    out_start: np.ndarray  # int64 [n_pop + 1]: population p's outgoing blocks are out_blk[out_start[p]:...]
    out_blk: np.ndarray  # int64: block indices grouped by presynaptic population
    in_blk: np.ndarray  # int64: the blocks from the input
    w: np.ndarray  # pre-major weights of every block
    d_off: np.ndarray  # uint32 per synapse: its place in the delay window (module docstring)
    d_frac: np.ndarray  # per synapse: the sub-step part of its delay
    d_bm: np.ndarray  # per synapse: beta^(-f) (input synapses: beta^r of the arrival)
    d_am: np.ndarray  # per synapse: alpha^(-f) (input synapses: alpha^r)
    n_slots: int  # grid times per half of the delay window this call; 0: no block is delayed
    crow: np.ndarray  # int64 [n_neurons]: each neuron's coefficient row (its population's, or its own)
    hetero: np.ndarray  # int8 [n_pop]: 1 where each neuron has its own row (per-neuron time constants)


class Outputs(NamedTuple):
    """What the forward pass returns per sample (and, in the backward pass, dL/d of each)."""

    trace: np.ndarray  # [N, T, n_out]: the output voltage at the end of each step
    t_first: np.ndarray  # [N, n_out]: each output neuron's first spike time (steps; T: none)
    counts: np.ndarray  # [N, n_hidden]: each hidden neuron's spike count


class Records(NamedTuple):
    """The spike records of the forward pass, per sample (all the backward pass needs)."""

    step: np.ndarray  # int32 [N, capacity]
    nrn: np.ndarray  # int32 [N, capacity]
    phi: np.ndarray  # [N, capacity]: the spike's phase within its step
    v: np.ndarray  # [N, capacity]: the neuron's voltage at the start of the step
    i: np.ndarray  # [N, capacity]: its synaptic current at the start of the step
    n: np.ndarray  # int64 [N]: records per sample
    overflow: np.ndarray  # int8 [N]: 1 where a sample ran out of capacity (the call is repeated)


@njit(cache=True, fastmath=_FASTMATH, nogil=True, inline="always")
def _axpy(y, x, a):
    """y += a x (one synaptic row)."""
    for t in range(y.shape[0]):
        y[t] += a * x[t]


@njit(cache=True, fastmath=_FASTMATH, nogil=True, inline="always")
def _advance(v, i, v_adv, alpha, kappa):
    """v_adv = alpha v + kappa i (the step's propagator, before threshold)."""
    for t in range(v.shape[0]):
        v_adv[t] = nm.advance(v[t], i[t], alpha, kappa)


@njit(cache=True, fastmath=_FASTMATH, nogil=True, inline="always")
def _commit(v, i, v_adv, beta):
    for t in range(v.shape[0]):
        v[t] = v_adv[t]
        i[t] = beta * i[t]


@njit(cache=True, fastmath=_FASTMATH, nogil=True, inline="always")
def _adjoint_step(lam_v, lam_i, alpha, beta, kappa):
    """Transpose of the propagator: lam_v <- alpha lam_v, lam_i <- kappa lam_v + beta lam_i."""
    for t in range(lam_v.shape[0]):
        lam_v[t], lam_i[t] = nm.adjoint_back(lam_v[t], lam_i[t], alpha, beta, kappa)


@njit(cache=True, fastmath=_FASTMATH, nogil=True, inline="always")
def _advance_rows(v, i, v_adv, coef, crow):
    """:func:`_advance` with each neuron's own coefficient row ``coef[crow[t]]`` (a population
    with per-neuron time constants)."""
    for t in range(v.shape[0]):
        cr = crow[t]
        v_adv[t] = nm.advance(v[t], i[t], coef[cr, ALPHA], coef[cr, KAPPA])


@njit(cache=True, fastmath=_FASTMATH, nogil=True, inline="always")
def _commit_rows(v, i, v_adv, coef, crow):
    for t in range(v.shape[0]):
        v[t] = v_adv[t]
        i[t] = coef[crow[t], BETA] * i[t]


@njit(cache=True, fastmath=_FASTMATH, nogil=True, inline="always")
def _adjoint_step_rows(lam_v, lam_i, coef, crow):
    """:func:`_adjoint_step` with each neuron's own coefficient row."""
    for t in range(lam_v.shape[0]):
        cr = crow[t]
        lam_v[t], lam_i[t] = nm.adjoint_back(lam_v[t], lam_i[t], coef[cr, ALPHA], coef[cr, BETA], coef[cr, KAPPA])


@njit(cache=True, fastmath=_FASTMATH, nogil=True)
def _neuron_columns(coef, crow):
    """``(hs, hm, c)`` of every neuron from its coefficient row, as contiguous float64 rows (the
    per-synapse loops of neurons with their own time constants read them)."""
    out = np.empty((3, crow.shape[0]))
    for j in range(crow.shape[0]):
        out[0, j] = coef[crow[j], HS]
        out[1, j] = coef[crow[j], HM]
        out[2, j] = coef[crow[j], C]
    return out


@njit(cache=True, fastmath=_FASTMATH, nogil=True)
def _restart_gain(coef, cr, phi):
    """:func:`nm.restart`'s gain with the coefficient row ``cr`` (a neuron with its own)."""
    return nm.restart(coef[cr, C], coef[cr, BETA], coef[cr, HM], coef[cr, HS], phi)[0]


@njit(cache=True, fastmath=_FASTMATH, nogil=True)
def _deliver_own(win, p0, stride, phi, i_state, v_state, net, cols, k, base):
    """A spike's arrivals through block ``k`` (row ``base``) in a population whose neurons have
    their own time constants (``cols``: every neuron's ``hs, hm, c``): delayed into the window at
    ``p0`` (:func:`_deliver_delayed_rows`), or into the state now (:func:`_deliver_rows`)."""
    q = net.blk[k, POST]
    n_post = net.blk[k, N_POST]
    q0 = net.pop_off[q]
    tq = slice(q0, q0 + n_post)
    tw = slice(base, base + n_post)
    b0 = net.coef[q, B0]
    if net.blk[k, DELAYED]:
        _deliver_delayed_rows(
            win, p0, stride, phi, net.w[tw], net.d_off[tw], net.d_frac[tw], cols[0, tq], cols[1, tq], cols[2, tq], b0
        )
    else:
        _deliver_rows(i_state[tq], v_state[tq], net.w[tw], cols[0, tq], cols[1, tq], cols[2, tq], b0, phi)


@njit(cache=True, fastmath=_FASTMATH, nogil=True)
def _adjoint_own(hist, rhist, p0, stride, phi, lam_i, lam_v, gw, gd, net, cols, k, base, learn, dx, g_cols):
    """Backward of :func:`_deliver_own`: the spike's ``sum w dL/dtau`` through block ``k``, its
    synapses' ``gw`` and (delays) ``gd``, and with ``learn`` each target's terms
    (:func:`_adjoint_delayed_rows`, :func:`_adjoint_rows`)."""
    q = net.blk[k, POST]
    n_post = net.blk[k, N_POST]
    q0 = net.pop_off[q]
    tq = slice(q0, q0 + n_post)
    tc = slice(q0 if learn else 0, q0 + n_post if learn else 1)
    tw = slice(base, base + n_post)
    b0 = net.coef[q, B0]
    if net.blk[k, DELAYED]:
        return _adjoint_delayed_rows(
            hist,
            rhist,
            p0,
            stride,
            phi,
            net.w[tw],
            gw[tw],
            gd[tw],
            net.d_off[tw],
            net.d_frac[tw],
            cols[0, tq],
            cols[1, tq],
            cols[2, tq],
            b0,
            learn,
            g_cols[:, tc],
        )
    learn_d = net.blk[k, LEARN_D] != 0
    return _adjoint_rows(
        lam_i[tq],
        lam_v[tq],
        net.w[tw],
        gw[tw],
        gd[tw] if learn_d else gd[0:1],
        learn_d,
        cols[0, tq],
        cols[1, tq],
        cols[2, tq],
        b0,
        phi,
        learn,
        dx[0, tc],
        dx[1, tc],
        g_cols[0, tc],
        g_cols[1, tc],
        g_cols[2, tc],
        g_cols[3, tc],
    )


@njit(cache=True, fastmath=_FASTMATH, nogil=True)
def _input_delay_grads_own(gd, w, lam_i, lam_v, cols, q0, n_post, b0):
    """dL/d(delay) (per step) of an input spike's undelayed arrivals (``i += w b0`` at n h) in
    targets with their own time constants: each synapse's :func:`nm.arrival_rate` at its target's."""
    for m in range(n_post):
        db, de = nm.arrival_rate(b0, b0 * cols[2, q0 + m], 1.0, 1.0, cols[0, q0 + m], cols[1, q0 + m])
        gd[m] += w[m] * (lam_i[q0 + m] * db + lam_v[q0 + m] * de)


@njit(cache=True, fastmath=_FASTMATH, nogil=True)
def _deliver_rows(i, v, w, hs, hm, c, b0, phi):
    """A spike at ``phi`` reaches targets that each decay with their own time constants (``hs``,
    ``hm``, ``c``: theirs): ``i += w b0 x``, ``v += w b0 c (x - y)`` with their remaining decays
    ``x = exp(-(1 - phi) hs)``, ``y = exp(-(1 - phi) hm)`` (:func:`nm.decay_series`)."""
    r = 1.0 - phi
    for t in range(w.shape[0]):
        x = nm.decay_series(r * hs[t])
        y = nm.decay_series(r * hm[t])
        i[t] += w[t] * (b0 * x)
        v[t] += w[t] * (b0 * c[t] * (x - y))


@njit(cache=True, fastmath=_FASTMATH, nogil=True)
def _adjoint_rows(lam_i, lam_v, w, gw, gd, learn_d, hs, hm, c, b0, phi, learn, dx_i, dx_v, g_b0, g_c, g_hs, g_hm):
    """The backward pass of :func:`_deliver_rows`: returns the spike's ``sum w (lam_i db + lam_v
    de)`` (``db``, ``de``: the arrival's derivatives in its time) and adds ``lam_i b + lam_v e`` to
    ``gw`` (with ``learn_d`` each synapse's term, its delay gradient, to ``gd``); with ``learn``,
    each target's arrival to ``dx`` and the arrival's derivatives in the target's ``b0``, ``c``,
    ``hs``, ``hm`` at fixed phase to ``g_*`` (per target)."""
    r = 1.0 - phi
    acc = 0.0
    for t in range(w.shape[0]):
        h_s = hs[t]
        h_m = hm[t]
        ct = c[t]
        x = nm.decay_series(r * h_s)
        y = nm.decay_series(r * h_m)
        b, e = nm.arrival(b0, b0 * ct, x, y)
        db, de = nm.arrival_rate(b0, b0 * ct, x, y, h_s, h_m)
        li = lam_i[t]
        lv = lam_v[t]
        wt = w[t]
        term = wt * (li * db + lv * de)
        acc += term
        gw[t] += li * b + lv * e
        if learn_d:
            gd[t] += term
        if learn:
            dx_i[t] += wt * b
            dx_v[t] += wt * e
            t_b0, t_c, t_hs, t_hm = nm.arrival_decay_terms(wt * li, wt * lv, b0, ct, x, y, r)
            g_b0[t] += t_b0
            g_c[t] += t_c
            g_hs[t] += t_hs
            g_hm[t] += t_hm
    return acc


@njit(cache=True, fastmath=_FASTMATH, nogil=True, inline="always")
def _delayed_place(phi, f, p0, off, stride):
    """A hidden spike at ``phi`` on a synapse with the sub-step part ``f``: the time ``r`` (steps)
    from its arrival to the grid time where it is applied, and that grid time's window position
    (one row later when ``phi + f > 1``, as :func:`nm.delayed_decays` decides)."""
    late = phi + f > 1.0
    r = 1.0 - phi - f + (1.0 if late else 0.0)
    return r, p0 + off + (stride if late else _ZERO)


@njit(cache=True, fastmath=_FASTMATH, nogil=True)
def _deliver_delayed_rows(win, p0, stride, phi, w, d_off, d_frac, hs, hm, c, b0):
    """A hidden spike's delayed arrivals (whole or fractional) in targets that each decay with
    their own time constants (one row, in target order): ``w (b0 x, b0 c (x - y))`` with ``x =
    exp(-r hs)``, ``y = exp(-r hm)`` over each synapse's own ``r`` (:func:`_delayed_place`)."""
    for t in range(w.shape[0]):
        r, k = _delayed_place(phi, d_frac[t], p0, d_off[t], stride)
        x = nm.decay_series(r * hs[t])
        y = nm.decay_series(r * hm[t])
        wt = w[t]
        win[k] += wt * (b0 * x)
        win[k + _ONE] += wt * (b0 * c[t] * (x - y))


@njit(cache=True, fastmath=_FASTMATH, nogil=True)
def _adjoint_delayed_rows(hist, rhist, p0, stride, phi, w, gw, gd, d_off, d_frac, hs, hm, c, b0, learn, g_cols):
    """Backward of :func:`_deliver_delayed_rows`: ``gw``, ``gd`` (per step) and the spike's
    ``sum w dL/dtau`` (returned) from the adjoint at each arrival's grid time; with ``learn``, each
    target's decay terms (``b0``, ``c``, ``hs``, ``hm``) and the pairing of its arrival with the
    sensitivities of that grid time (``alpha``, ``kappa``, ``beta``) into its columns of
    ``g_cols`` (rows 0-6; ``rhist``: the sensitivities by grid time, six per neuron)."""
    acc = 0.0
    for t in range(w.shape[0]):
        r, k = _delayed_place(phi, d_frac[t], p0, d_off[t], stride)
        h_s = hs[t]
        h_m = hm[t]
        ct = c[t]
        x = nm.decay_series(r * h_s)
        y = nm.decay_series(r * h_m)
        b, e = nm.arrival(b0, b0 * ct, x, y)
        db, de = nm.arrival_rate(b0, b0 * ct, x, y, h_s, h_m)
        li = hist[k]
        lv = hist[k + _ONE]
        wt = w[t]
        term = wt * (li * db + lv * de)
        acc += term
        gw[t] += li * b + lv * e
        gd[t] += term
        if learn:
            _delayed_coef_terms(g_cols[:, t], rhist, k, wt, li, lv, x, y, r, ct, b0)
    return acc


@njit(cache=True, fastmath=_FASTMATH, nogil=True, inline="always")
def _delayed_coef_terms(g, rhist, k, wt, li, lv, x, y, r, c, b0):
    """One delayed arrival ``w (b0 x, b0 c (x - y))`` (``x = exp(-r hs)``, ``y = exp(-r hm)``) of
    a target with its own coefficients: its terms in the target's ``b0, c, hs, hm`` (``g[0:4]``,
    at fixed arrival time) and its pairing with the sensitivities at its grid time's window
    position ``k`` (``alpha, kappa, beta``: ``g[4:7]``)."""
    t_b0, t_c, t_hs, t_hm = nm.arrival_decay_terms(wt * li, wt * lv, b0, c, x, y, r)
    g[0] += t_b0
    g[1] += t_c
    g[2] += t_hs
    g[3] += t_hm
    a_i = wt * (b0 * x)
    a_v = wt * (b0 * c * (x - y))
    kr = np.int64(k) * 3
    g[4] += a_v * rhist[kr] + a_i * rhist[kr + 1]
    g[5] += a_v * rhist[kr + 2] + a_i * rhist[kr + 3]
    g[6] += a_v * rhist[kr + 4] + a_i * rhist[kr + 5]


@njit(cache=True, fastmath=_FASTMATH, nogil=True)
def _input_coef_rows(hist, rhist, p0, w, d_off, d_frac, d_bm, d_am, c, b0, substep, g_cols):
    """The coefficient terms of an input spike's delayed arrivals in targets with their own
    coefficients (one row, in target order): :func:`_delayed_coef_terms` with each synapse's fixed
    decays (``d_bm``, ``d_am`` over ``r = 1 - f``; whole steps: none)."""
    for t in range(w.shape[0]):
        k = p0 + d_off[t]
        f = d_frac[t]
        x = d_bm[t] * 1.0 if substep else 1.0
        y = d_am[t] * 1.0 if substep else 1.0
        r = 1.0 - f if substep and f > 0.0 else 0.0
        _delayed_coef_terms(g_cols[:, t], rhist, k, w[t], hist[k], hist[k + _ONE], x, y, r, c[t], b0)


@njit(cache=True, fastmath=_FASTMATH, nogil=True)
def _input_grads_rows(gw, gd, w, d_bm, d_am, lo, hi, n_post, b0, hs, hm, c, substep):
    """:func:`_input_grads` for targets with their own time constants (``hs``, ``hm``, ``c``: the
    target population's, per neuron; synapse ``t`` reaches target ``(t - lo) % n_post``)."""
    for t in range(lo, hi):
        m = (t - lo) % n_post
        x = d_bm[t] * 1.0 if substep else 1.0
        y = d_am[t] * 1.0 if substep else 1.0
        b0c = b0 * c[m]
        li = gw[t]
        lv = gd[t]
        p_i, p_v = nm.arrival(b0, b0c, x, y)
        dp_i, dp_v = nm.arrival_rate(b0, b0c, x, y, hs[m], hm[m])
        gw[t] = li * p_i + (lv * p_v if substep else 0.0)
        gd[t] = w[t] * (li * dp_i + lv * dp_v)


@njit(cache=True, fastmath=_FASTMATH, nogil=True, inline="always")
def _dot(x, y):
    """sum_t x[t] y[t], summed in float64."""
    acc = 0.0
    for t in range(x.shape[0]):
        acc += x[t] * y[t]
    return acc


@njit(cache=True, fastmath=_FASTMATH, nogil=True, inline="always")
def _chunk_max(x):
    m = x[0]
    for t in range(1, x.shape[0]):
        m = max(m, x[t])
    return m


@njit(cache=True, fastmath=_FASTMATH, nogil=True, inline="always")
def _axpy4(y, x0, x1, x2, x3, a):
    """y += a (x0 + x1 + x2 + x3): four synaptic rows in one pass over y."""
    for t in range(y.shape[0]):
        y[t] += a * ((x0[t] + x1[t]) + (x2[t] + x3[t]))


@njit(cache=True, fastmath=_FASTMATH, nogil=True, inline="always")
def _axpy2(y1, y2, x, a1, a2):
    """y1 += a1 x; y2 += a2 x (current and voltage of a spike's targets)."""
    for t in range(x.shape[0]):
        y1[t] += a1 * x[t]
        y2[t] += a2 * x[t]


@njit(cache=True, fastmath=_FASTMATH, nogil=True, inline="always")
def _jump_and_grad(lam_i, lam_v, w, gw, b, e, db, de):
    """Return sum_t w_t (lam_i db + lam_v de) and add lam_i b + lam_v e to gw (one row)."""
    acc = w[0] * 0
    for t in range(w.shape[0]):
        li = lam_i[t]
        lv = lam_v[t]
        acc += w[t] * (li * db + lv * de)
        gw[t] += li * b + lv * e
    return acc


@njit(cache=True, fastmath=_FASTMATH, nogil=True, inline="always")
def _remaining_decay(coef, q, phi, cache):
    """(beta_q^(1-phi), alpha_q^(1-phi)): target population q's decay from the spike to the end of
    its step. ``cache`` holds (hs, hm, beta^, alpha^) of the previous target; set cache[0] = -1
    for a new spike. Consecutive targets usually share time constants, so this saves the exps."""
    if coef[q, HS] != cache[0] or coef[q, HM] != cache[1]:
        cache[0] = coef[q, HS]
        cache[1] = coef[q, HM]
        cache[2], cache[3] = nm.remaining_decays(phi, cache[0], cache[1])
    return cache[2], cache[3]


@njit(cache=True, fastmath=_FASTMATH, nogil=True, inline="always")
def _block(blk, pop_off, k):
    """Connection block k as (post population q, n_post, weight offset, first neuron of q)."""
    q = blk[k, POST]
    return q, blk[k, N_POST], blk[k, W_OFF], pop_off[q]


@njit(cache=True, fastmath=_FASTMATH, nogil=True, inline="always")
def _row(grid, first, stride):
    """Flat position of grid time ``grid``'s row in a delay window whose row 0 is grid time
    ``first`` (unsigned: numba indexes with it without a negative-index select)."""
    return np.uint64((grid - first) * stride)


@njit(cache=True, fastmath=_FASTMATH, nogil=True, inline="always")
def _block_end(blk, k, n_w):
    """One past block k's last weight (blocks are stored in order)."""
    return blk[k + 1, W_OFF] if k + 1 < blk.shape[0] else n_w


@njit(cache=True, fastmath=_FASTMATH, nogil=True)
def _call_arrivals(arr, net):
    """What the synapses with a sub-step delay part carry into every spike, fixed per call (the
    synapse's decays ``x = d_bm``, ``y = d_am`` do not depend on the spike):

    * a delayed input synapse t: its whole arrival ``(w b0 x, w b0 c (x - y))``, interleaved at
      ``arr[2 t : 2 t + 2]`` (input spikes sit on the grid, so a spike's delivery only adds it);
    * a delayed hidden synapse: ``w x`` and ``w y``, by presynaptic row (the row at ``base`` keeps
      ``w x`` at ``arr[2 base : 2 base + n_post]`` and ``w y`` after it), which
      :func:`_deliver_spike` scales by the spike's own decays."""
    coef, blk, w, d_bm, d_am = net.coef, net.blk, net.w, net.d_bm, net.d_am
    for k in range(blk.shape[0]):
        if blk[k, DELAYED] == 0 or blk[k, SUBSTEP] == 0:
            continue
        q = blk[k, POST]
        lo = blk[k, W_OFF]
        hi = _block_end(blk, k, w.shape[0])
        if blk[k, PRE] < 0:  # an input block
            b0 = coef[q, B0]
            b0c = coef[q, B0] * coef[q, C]
            n_post = blk[k, N_POST]
            for t in range(lo, hi):
                wt = w[t]
                x = d_bm[t]
                if net.hetero[q]:  # the target's own c
                    b0c = b0 * coef[net.crow[net.pop_off[q] + (t - lo) % n_post], C]
                arr[2 * t] = wt * b0 * x
                arr[2 * t + 1] = wt * b0c * (x - d_am[t])
            continue
        n_post = blk[k, N_POST]
        for base in range(lo, hi, n_post):
            wx = arr[2 * base : 2 * base + n_post]
            wy = arr[2 * base + n_post : 2 * base + 2 * n_post]
            for t in range(n_post):
                wx[t] = w[base + t] * d_bm[base + t]
                wy[t] = w[base + t] * d_am[base + t]


@njit(cache=True, fastmath=_FASTMATH, nogil=True)
def _deliver_input(win, p0, arr, d_off, base, n_post):
    """Schedule an input spike's delayed arrivals (row ``base``; ``p0`` = the window row of the
    spike's step): synapse t adds its arrival ``arr[2 t : 2 t + 2]`` (:func:`_call_arrivals`) to
    ``(i, v)`` at ``p0 + d_off``."""
    d_off_ = d_off[base : base + n_post]
    arr_ = arr[2 * base : 2 * (base + n_post)]
    for t in range(n_post):
        k = p0 + d_off_[t]
        win[k] += arr_[2 * t]
        win[k + _ONE] += arr_[2 * t + 1]


@njit(cache=True, fastmath=_FASTMATH, nogil=True, inline="always")
def _on_time(frac_, edge):
    """How many synapses of a row sorted by sub-step part (``frac_`` ascending, see
    :meth:`CpuBackend.inputs`) arrive within the spike's step: those with ``frac <= edge = 1 -
    phi``; the rest arrive in the following one. (Binary search.)"""
    lo = 0
    hi = frac_.shape[0]
    while lo < hi:
        mid = (lo + hi) >> 1
        if frac_[mid] <= edge:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True, fastmath=_FASTMATH, nogil=True, inline="always")
def _deliver_run(win, p0, s_i, s_v, s_a, off_, wx_, wy_, lo, hi):
    """Synapses ``lo`` to ``hi - 1`` of a hidden spike's row add ``(s_i w x, s_v w x - s_a w y)``
    at ``p0 + d_off``."""
    for t in range(lo, hi):
        k = p0 + off_[t]
        x = wx_[t]
        win[k] += s_i * x
        win[k + _ONE] += s_v * x - s_a * wy_[t]


@njit(cache=True, fastmath=_FASTMATH, nogil=True)
def _deliver_spike(win, p0, stride, edge, s_i, s_v, s_a, l_i, l_v, l_a, arr, d_off, d_frac, base, n_post):
    """Schedule a hidden spike's delayed arrivals on fractional delays (``p0`` = the window row
    of the grid time after the spike's step, ``stride`` = one row, uint32; the row's synapses
    sorted by sub-step part). The spike, fired at phase ``phi``, gives its scalars in the
    weights' precision: ``edge = 1 - phi``, ``s_i = b0 bs``, ``s_v = b0 c bs``, ``s_a = b0 c am``
    (``bs, am`` = the target's beta^(1-phi), alpha^(1-phi)) for the synapses that arrive within
    the step, and ``l_i = s_i beta``, ``l_v = s_v beta``, ``l_a = s_a alpha`` for those whose
    sub-step part is above ``edge``: they arrive in the following step, one row later, with one
    step's decay more. With the synapse's ``w x``, ``w y`` (:func:`_call_arrivals`) the arrival
    is ``(s_i w x, s_v w x - s_a w y)``: :func:`nm.arrival` at the decays of
    :func:`nm.delayed_decays`. The sorted row splits into the two runs by one binary search, so
    the per-synapse loops read three streams and carry no per-synapse select."""
    off_ = d_off[base : base + n_post]
    wx_ = arr[2 * base : 2 * base + n_post]
    wy_ = arr[2 * base + n_post : 2 * base + 2 * n_post]
    split = _on_time(d_frac[base : base + n_post], edge)
    _deliver_run(win, p0, s_i, s_v, s_a, off_, wx_, wy_, 0, split)
    _deliver_run(win, p0 + stride, l_i, l_v, l_a, off_, wx_, wy_, split, n_post)


@njit(cache=True, fastmath=_FASTMATH, nogil=True, inline="always")
def _adjoint_run(hist, p0, e_i, e_v, e_a, hs, hm, w_, gw_, gd_, off_, bm_, am_, lo, hi):
    """Backward of :func:`_deliver_run` for synapses ``lo`` to ``hi - 1``; returns their
    ``sum w dL/dtau``."""
    acc = w_[0] * 0
    for t in range(lo, hi):
        k = p0 + off_[t]
        lv = hist[k + _ONE]
        a = bm_[t] * (e_i * hist[k] + e_v * lv)
        b = am_[t] * (e_a * lv)
        term = hs * a - hm * b
        wt = w_[t]
        acc += wt * term
        gw_[t] += a - b
        gd_[t] += wt * term
    return acc


@njit(cache=True, fastmath=_FASTMATH, nogil=True)
def _adjoint_spike(
    hist, p0, stride, edge, e_i, e_v, e_a, l_i, l_v, l_a, hs, hm, w, gw, gd, d_off, d_frac, d_bm, d_am, base, n_post
):
    """Backward of :func:`_deliver_spike`: dL/dw into ``gw``, dL/d(delay) (per step) into ``gd``;
    returns sum_t w dL/dtau, the spike's dL/dphi through these synapses. The spike's scalars
    (weights' precision) are ``e_i = b0 bs``, ``e_v = b0 c bs``, ``e_a = b0 c am`` and their late
    counterparts ``l_* `` (times beta, beta, alpha). With the decays ``x, y`` of
    :func:`nm.delayed_decays` and the adjoint pair ``(lam_i, lam_v)`` at the arrival, ``A = x
    (b0 lam_i + b0 c lam_v)``, ``B = y b0 c lam_v``: ``dL/dw = A - B`` (:func:`nm.arrival`), ``w
    dL/dtau = w (hs A - hm B)`` (:func:`nm.arrival_rate`)."""
    off_ = d_off[base : base + n_post]
    bm_ = d_bm[base : base + n_post]
    am_ = d_am[base : base + n_post]
    w_ = w[base : base + n_post]
    gw_ = gw[base : base + n_post]
    gd_ = gd[base : base + n_post]
    split = _on_time(d_frac[base : base + n_post], edge)
    acc = _adjoint_run(hist, p0, e_i, e_v, e_a, hs, hm, w_, gw_, gd_, off_, bm_, am_, 0, split)
    acc += _adjoint_run(hist, p0 + stride, l_i, l_v, l_a, hs, hm, w_, gw_, gd_, off_, bm_, am_, split, n_post)
    return acc


@njit(cache=True, fastmath=_FASTMATH, nogil=True)
def _gather_adjoint(hist, p0, gw, gd, d_off, base, n_post):
    """Backward of an input spike's delayed arrivals (:func:`_deliver_whole_current`,
    :func:`_deliver_input`; ``p0`` = the window row of the spike's step), before their factors:
    the adjoint pair at each arrival, ``lam_i`` into ``gw`` and ``lam_v`` into ``gd``. An input
    synapse's factors are fixed per call, so :func:`_input_grads` applies them once per group."""
    d_off_ = d_off[base : base + n_post]
    gw_ = gw[base : base + n_post]
    gd_ = gd[base : base + n_post]
    for t in range(n_post):
        k = p0 + d_off_[t]
        gw_[t] += hist[k]
        gd_[t] += hist[k + _ONE]


@njit(cache=True, fastmath=_FASTMATH, nogil=True)
def _input_grads(gw, gd, w, d_bm, d_am, lo, hi, b0, b0c, hs, hm, substep):
    """dL/dw and dL/d(delay) (per step) of the delayed input synapses ``lo .. hi - 1`` from the
    sums of :func:`_gather_adjoint` (``gw``: sum of lam_i, ``gd``: sum of lam_v at the arrivals):
    ``dL/dw = lam_i b0 x + lam_v b0 c (x - y)``, ``dL/d(delay) = w (lam_i b0 x hs + lam_v b0 c
    (hs x - hm y))`` with the synapse's fixed decays ``x = beta^r``, ``y = alpha^r`` (``d_bm``,
    ``d_am``; whole-step delays: ``x = y = 1``, the arrival moves only the current)."""
    if substep == 0:
        dp_i, dp_v = nm.arrival_rate(b0, b0c, 1.0, 1.0, hs, hm)
        for t in range(lo, hi):
            li = gw[t]
            lv = gd[t]
            gw[t] = li * b0
            gd[t] = w[t] * (li * dp_i + lv * dp_v)
    else:
        for t in range(lo, hi):
            li = gw[t]
            lv = gd[t]
            p_i, p_v = nm.arrival(b0, b0c, d_bm[t], d_am[t])
            dp_i, dp_v = nm.arrival_rate(b0, b0c, d_bm[t], d_am[t], hs, hm)
            gw[t] = li * p_i + lv * p_v
            gd[t] = w[t] * (li * dp_i + lv * dp_v)


@njit(cache=True, fastmath=_FASTMATH, nogil=True)
def _deliver_whole(win, p0, a_i, a_v, w, d_off, base, n_post):
    """:func:`_deliver_spike` for a block whose delays are whole steps (``SUBSTEP = 0``): every
    synapse of the spike lands with the spike's own decays, so the arrival is ``w (a_i, a_v)``,
    at ``p0 + d_off``: one load of the offset, no index arithmetic, per synapse."""
    w_ = w[base : base + n_post]
    d_off_ = d_off[base : base + n_post]
    for t in range(n_post):
        k = p0 + d_off_[t]
        wt = w_[t]
        win[k] += wt * a_i
        win[k + _ONE] += wt * a_v


@njit(cache=True, fastmath=_FASTMATH, nogil=True)
def _deliver_whole_current(win, p0, a_i, w, d_off, base, n_post):
    """:func:`_deliver_input` on whole-step delays: the spike lands on the grid and moves only the
    current, by ``w a_i``."""
    w_ = w[base : base + n_post]
    d_off_ = d_off[base : base + n_post]
    for t in range(n_post):
        win[p0 + d_off_[t]] += w_[t] * a_i


@njit(cache=True, fastmath=_FASTMATH, nogil=True)
def _adjoint_whole(hist, p0, p_i, p_v, dp_i, dp_v, w, gw, gd, d_off, base, n_post):
    """Backward of :func:`_deliver_whole`: ``gw += lam_i p_i + lam_v p_v``, per synapse
    ``dL/d(delay) = w (lam_i dp_i + lam_v dp_v)`` into ``gd``; returns their sum (``dL/dtau``)."""
    w_ = w[base : base + n_post]
    d_off_ = d_off[base : base + n_post]
    gw_ = gw[base : base + n_post]
    gd_ = gd[base : base + n_post]
    acc = w_[0] * 0
    for t in range(n_post):
        k = p0 + d_off_[t]
        li = hist[k]
        lv = hist[k + _ONE]
        wt = w_[t]
        term = wt * (li * dp_i + lv * dp_v)
        acc += term
        gw_[t] += li * p_i + lv * p_v
        gd_[t] += term
    return acc


@njit(cache=True, fastmath=_FASTMATH, nogil=True, inline="always")
def _delay_grad(lam_i, lam_v, w, gd, db, de):
    """Add each synapse's dL/d(delay) (per step) of an undelayed arrival to ``gd`` (a pass of its
    own, so that the weight gradients are computed exactly as without delays)."""
    for t in range(w.shape[0]):
        gd[t] += w[t] * (lam_i[t] * db + lam_v[t] * de)


@njit(cache=True, fastmath=_FASTMATH, nogil=True, inline="always")
def _apply_row(win, i_state, v_state, p0):
    """Add the arrivals waiting in the window row at ``p0`` to the state and clear the row."""
    row = win[p0 : p0 + 2 * i_state.shape[0]]
    for j in range(i_state.shape[0]):
        i_state[j] += row[2 * j]
        v_state[j] += row[2 * j + 1]
        row[2 * j] = 0.0
        row[2 * j + 1] = 0.0


@njit(cache=True, fastmath=_FASTMATH, nogil=True, inline="always")
def _store_row(hist, lam_i, lam_v, p0):
    """Keep the adjoints of one grid time, interleaved (lam_i, lam_v), in the row at ``p0``."""
    row = hist[p0 : p0 + 2 * lam_i.shape[0]]
    for j in range(lam_i.shape[0]):
        row[2 * j] = lam_i[j]
        row[2 * j + 1] = lam_v[j]


@njit(cache=True, fastmath=_FASTMATH, nogil=True, inline="always")
def _slide(win, src, dst, n):
    """Copy ``n`` window entries from ``src`` to ``dst`` (one half of the window to the other)."""
    for t in range(n):
        win[dst + t] = win[src + t]


@njit(cache=True, fastmath=_FASTMATH, nogil=True)
def _restart_coef_grads(g_coef, p, lv, li, cur, c, beta, em, phi):
    """A spike's own step, v(n+1) = c (beta - em) i(n), i(n+1) = beta i(n) with
    em = exp(-(1 - phi) hm - phi hs), differentiated at fixed phi (``lv, li``: the neuron's
    adjoint at (n+1) h)."""
    g_coef[p, C] += lv * (beta - em) * cur
    g_coef[p, BETA] += (lv * c + li) * cur
    g_coef[p, HM] += lv * c * em * (1.0 - phi) * cur
    g_coef[p, HS] += lv * c * em * phi * cur


@njit(cache=True, fastmath=_FASTMATH, nogil=True)
def _arrival_coef_grads(g_coef, q, lam_i, lam_v, w, dx_i, dx_v, b0, c, bs, am, phi):
    """An undelayed spike's arrivals in population q, i += w b0 bs, v += w b0 c (bs - am) with
    bs = exp(-(1 - phi) hs), am = exp(-(1 - phi) hm), differentiated at fixed phi; the arrivals
    are also added to ``dx`` (they pair with rho at their grid time)."""
    s_i = w[0] * 0  # float64 sums (an integer literal makes numba promote a float32 scalar)
    s_v = w[0] * 0
    a_i = w[0] * 0 + b0 * bs
    a_v = w[0] * 0 + b0 * c * (bs - am)
    for t in range(w.shape[0]):
        s_i += w[t] * lam_i[t]
        s_v += w[t] * lam_v[t]
        dx_i[t] += w[t] * a_i
        dx_v[t] += w[t] * a_v
    _arrival_decay_grads(g_coef, q, s_i, s_v, b0, c, bs, am, phi)


@njit(cache=True, fastmath=_FASTMATH, nogil=True, inline="always")
def _arrival_decay_grads(g_coef, q, s_i, s_v, b0, c, bs, am, phi):
    """The decay terms of a spike's arrivals in population q (``s_i = sum w lam_i``,
    ``s_v = sum w lam_v`` over its targets, each at its arrival)."""
    t_b0, t_c, t_hs, t_hm = nm.arrival_decay_terms(s_i, s_v, b0, c, bs, am, 1.0 - phi)
    g_coef[q, B0] += t_b0
    g_coef[q, C] += t_c
    g_coef[q, HS] += t_hs
    g_coef[q, HM] += t_hm


@njit(cache=True, fastmath=_FASTMATH, nogil=True)
def _delayed_coef_sums(hist, rhist, p0, w, d_off, base, n_post, sums):
    """For one spike's whole-step delayed arrivals (``p0 + d_off``: each synapse's row and
    neuron): ``sums[0:2] = sum w (lam_i, lam_v)`` and ``sums[2:8] = sum w rho`` at the
    arrivals (``rhist``: the sensitivities by grid time, six per neuron, at 3x the positions)."""
    for k in range(8):
        sums[k] = 0.0
    for t in range(n_post):
        k = p0 + d_off[base + t]
        wt = w[base + t]
        sums[0] += wt * hist[k]
        sums[1] += wt * hist[k + _ONE]
        kr = np.int64(k) * 3
        for m in range(6):
            sums[2 + m] += wt * rhist[kr + m]


@njit(cache=True, fastmath=_FASTMATH, nogil=True)
def _fractional_coef_sums(hist, rhist, p0, stride, phi, bs, am, beta, alpha, net, base, n_post, sums):
    """For one spike's arrivals on fractional delays (as :func:`_adjoint_spike` finds them; an
    input spike's when ``phi < 0``: its fixed decays ``d_bm``, ``d_am`` over ``r = 1 - f``), with
    ``x, y`` each arrival's decays over the time ``r`` (steps) from the arrival to the grid time
    where it is applied and ``lam``, ``rho`` read at that grid time: ``sums[0:5] = sum w (x lam_i,
    (x - y) lam_v, r x lam_i, r x lam_v, r y lam_v)`` and ``sums[5:11]`` the sums of ``w (x - y)``
    times the v-sensitivities and ``w x`` times the i-sensitivities (alpha, kappa, beta pairs)."""
    w, d_off, d_frac, d_bm, d_am = net.w, net.d_off, net.d_frac, net.d_bm, net.d_am
    for m in range(11):
        sums[m] = 0.0
    for t in range(n_post):
        s = base + t
        f = d_frac[s]
        if phi < 0.0:  # input: the decays are the synapse's own
            x = d_bm[s] * 1.0
            y = d_am[s] * 1.0
            r = 1.0 - f if f > 0.0 else 0.0
            k = p0 + d_off[s]
        else:
            x, y, late = nm.delayed_decays(phi, f, bs, am, d_bm[s], d_am[s], beta, alpha)
            r = (1.0 - phi) - f + (1.0 if late else 0.0)
            k = p0 + d_off[s] + (stride if late else _ZERO)
        wt = w[s]
        li = hist[k]
        lv = hist[k + _ONE]
        wx = wt * x
        wxy = wt * (x - y)
        sums[0] += wx * li
        sums[1] += wxy * lv
        sums[2] += r * wx * li
        sums[3] += r * wx * lv
        sums[4] += r * wt * y * lv
        kr = np.int64(k) * 3
        for m in range(0, 6, 2):
            sums[5 + m] += wxy * rhist[kr + m]
            sums[6 + m] += wx * rhist[kr + m + 1]


@njit(cache=True, fastmath=_FASTMATH, nogil=True, inline="always")
def _fractional_coef_grads(g_coef, q, sums, b0, c):
    """The coefficient terms of arrivals on fractional delays in population q from
    :func:`_fractional_coef_sums`' ``sums``: the arrival ``w (b0 x, b0 c (x - y))`` with ``x =
    exp(-r hs)``, ``y = exp(-r hm)``, differentiated at fixed phase (``b0``, ``c``, ``hs``, ``hm``),
    and paired with the sensitivities of its grid time (``alpha``, ``kappa``, ``beta``)."""
    g_coef[q, B0] += sums[0] + c * sums[1]
    g_coef[q, C] += b0 * sums[1]
    g_coef[q, HS] -= b0 * (sums[2] + c * sums[3])
    g_coef[q, HM] += b0 * c * sums[4]
    g_coef[q, ALPHA] += b0 * c * sums[5] + b0 * sums[6]
    g_coef[q, KAPPA] += b0 * c * sums[7] + b0 * sums[8]
    g_coef[q, BETA] += b0 * c * sums[9] + b0 * sums[10]


@njit(cache=True, fastmath=_FASTMATH, nogil=True, inline="always")
def _pair_delayed(g_coef, q, sums, a_i, a_v):
    """rho . u of arrivals ``w (a_i, a_v)`` from :func:`_delayed_coef_sums`' ``sums``."""
    g_coef[q, ALPHA] += a_v * sums[2] + a_i * sums[3]
    g_coef[q, KAPPA] += a_v * sums[4] + a_i * sums[5]
    g_coef[q, BETA] += a_v * sums[6] + a_i * sums[7]


@njit(cache=True, fastmath=_FASTMATH, nogil=True, inline="always")
def _store_rho_row(rhist, rho, p0):
    """Keep the sensitivities of one grid time, six per neuron, at ``3 p0`` (the row of
    :func:`_store_row` at ``p0``)."""
    n = rho.shape[1]
    r0 = np.int64(p0) * 3
    row = rhist[r0 : r0 + 6 * n]
    for j in range(n):
        for m in range(6):
            row[6 * j + m] = rho[m, j]


@njit(cache=True, fastmath=_FASTMATH, nogil=True)
def _pair_arrivals(g_coef, rho, dx, pop_off, p_lo, p_hi, crow, hetero):
    """Add rho . dx (the arrivals of one grid time) to the (alpha, kappa, beta) gradients of
    populations ``p_lo`` to ``p_hi - 1`` (of each neuron's own row where ``hetero``) and clear
    their ``dx``."""
    for p in range(p_lo, p_hi):
        if hetero[p]:
            for j in range(pop_off[p], pop_off[p + 1]):
                cr = crow[j]
                xi = dx[0, j]
                xv = dx[1, j]
                g_coef[cr, ALPHA] += rho[0, j] * xv + rho[1, j] * xi
                g_coef[cr, KAPPA] += rho[2, j] * xv + rho[3, j] * xi
                g_coef[cr, BETA] += rho[4, j] * xv + rho[5, j] * xi
                dx[0, j] = 0.0
                dx[1, j] = 0.0
            continue
        g_a = 0.0
        g_k = 0.0
        g_b = 0.0
        for j in range(pop_off[p], pop_off[p + 1]):
            xi = dx[0, j]
            xv = dx[1, j]
            g_a += rho[0, j] * xv + rho[1, j] * xi
            g_k += rho[2, j] * xv + rho[3, j] * xi
            g_b += rho[4, j] * xv + rho[5, j] * xi
            dx[0, j] = 0.0
            dx[1, j] = 0.0
        g_coef[p, ALPHA] += g_a
        g_coef[p, KAPPA] += g_k
        g_coef[p, BETA] += g_b


@njit(cache=True, fastmath=_FASTMATH, nogil=True, inline="always")
def _rho_sources(r_v, r_k, r_b, lam_v, lam_i):
    """The sources of one step back: dA/d(alpha)^T lam into the alpha pair's v, dA/d(kappa)^T lam
    and dA/d(beta)^T lam into the kappa and beta pairs' i."""
    for t in range(lam_v.shape[0]):
        r_v[t] += lam_v[t]
        r_k[t] += lam_v[t]
        r_b[t] += lam_i[t]


@njit(cache=True, fastmath=_FASTMATH, nogil=True)
def _rho_step(rho, lam_v, lam_i, coef, pop_off, crow, hetero):
    """One step back of the coefficient sensitivities: rho(n) = A^T rho(n+1) + B^T lam(n+1), with
    B = dA/d(alpha), dA/d(kappa), dA/d(beta) of the propagator A = [[alpha, kappa], [0, beta]]
    (each pair steps back like the adjoint, :func:`_adjoint_step`)."""
    for p in range(pop_off.shape[0] - 1):
        j0 = pop_off[p]
        j1 = pop_off[p + 1]
        if hetero[p]:
            for k in range(0, 6, 2):
                _adjoint_step_rows(rho[k, j0:j1], rho[k + 1, j0:j1], coef, crow[j0:j1])
            _rho_sources(rho[0, j0:j1], rho[3, j0:j1], rho[5, j0:j1], lam_v[j0:j1], lam_i[j0:j1])
            continue
        alpha = coef[p, ALPHA]
        beta = coef[p, BETA]
        kappa = coef[p, KAPPA]
        for k in range(0, 6, 2):
            _adjoint_step(rho[k, j0:j1], rho[k + 1, j0:j1], alpha, beta, kappa)
        _rho_sources(rho[0, j0:j1], rho[3, j0:j1], rho[5, j0:j1], lam_v[j0:j1], lam_i[j0:j1])


@njit(cache=True, fastmath=_FASTMATH, nogil=True)
def _adapt(a_state, rec_nrn, rec_phi, r0, r1, j0, j1, rho_a, h_a, delta_a):
    """One step of the threshold adaptation of neurons j0..j1-1: a <- rho_a a, and a spike at phase
    phi (records r0..r1-1) adds delta_a decayed over the rest of its step, delta_a rho_a^(1-phi)."""
    for j in range(j0, j1):
        a_state[j] = rho_a * a_state[j]
    for r in range(r0, r1):
        j = rec_nrn[r]
        if j0 <= j < j1:
            a_state[j] += delta_a * np.exp(-(1.0 - rec_phi[r]) * h_a)


@njit(cache=True, fastmath=_FASTMATH, nogil=True)
def _replay_adaptation(rec_a, rec_step, rec_nrn, rec_phi, n_rec, n_steps, coef, pop_off, n_a):
    """rec_a[r] = a(n) of record r's neuron at the start of its step n, computed as the forward
    pass computes it (:func:`_adapt`, the same operations in the same order)."""
    a_state = np.zeros(n_a, dtype=rec_a.dtype)
    r0 = 0
    for n in range(n_steps):
        r1 = r0
        while r1 < n_rec and rec_step[r1] == n:
            rec_a[r1] = a_state[rec_nrn[r1]]
            r1 += 1
        for p in range(pop_off.shape[0] - 1):
            if coef[p, DELTA_A] != 0.0:
                _adapt(
                    a_state,
                    rec_nrn,
                    rec_phi,
                    r0,
                    r1,
                    pop_off[p],
                    pop_off[p + 1],
                    coef[p, RHO_A],
                    coef[p, HA],
                    coef[p, DELTA_A],
                )
        r0 = r1


@njit(cache=True, fastmath=_FASTMATH, nogil=True)
def _forward_one(b, spikes, net, arr, window, out, rec, rows):
    in_off, in_step, in_ch, n_steps = spikes
    pop_off, pop_of, coef, spiking, _, blk, out_start, out_blk, in_blk = net[:9]
    w, d_off, d_frac, d_bm, d_am, n_slots = net[9:15]
    trace, t_first, counts = out
    rec_step, rec_nrn, rec_phi, rec_v, rec_i, n_rec, overflow = rec
    n_pop = pop_off.shape[0] - 1
    n_tot = pop_off[n_pop]
    o0 = pop_off[n_pop - 1]
    cap = rec_step.shape[1]
    v_state = np.zeros(n_tot, dtype=w.dtype)
    i_state = np.zeros(n_tot, dtype=w.dtype)
    v_adv = np.zeros(n_tot, dtype=w.dtype)
    a_state = np.zeros(n_tot, dtype=w.dtype)  # threshold adaptation (adaptive populations)
    scal = np.zeros(8, dtype=w.dtype)  # scalars in the weights' precision (keeps loops SIMD)
    decay = np.zeros(4)  # _remaining_decay's cache
    delayed = n_slots > 0
    # arrivals (i, v) by grid time in a window of 2 n_slots rows (row r: grid time first + r);
    # every n_slots steps its upper half slides down (see the module docstring)
    stride = 2 * n_tot
    half = n_slots * stride
    win = window[get_thread_id()]
    if delayed:
        win[: 2 * half] = 0.0
    first = 0
    nr = 0
    ip = in_off[b]
    i_end = in_off[b + 1]
    for n in range(n_steps):
        if delayed and n - first == n_slots:  # rows below grid n are spent
            _slide(win, half, 0, half)
            win[half : 2 * half] = 0.0
            first += n_slots
        p_in = _row(n, first, stride)
        # 1. input spikes of step n (rows summed four at a time: fewer passes over i)
        i0 = ip
        while ip < i_end and in_step[ip] == n:
            ip += 1
        in_delayed = False
        for kk in range(in_blk.shape[0]):
            q, n_post, w0, q0 = _block(blk, pop_off, in_blk[kk])
            if blk[in_blk[kk], DELAYED] and blk[in_blk[kk], SUBSTEP] == 0:
                for s in range(i0, ip):
                    _deliver_whole_current(win, p_in, coef[q, B0], w, d_off, w0 + in_ch[s] * n_post, n_post)
                in_delayed = True
                continue
            if blk[in_blk[kk], DELAYED]:
                for s in range(i0, ip):
                    _deliver_input(win, p_in, arr, d_off, w0 + in_ch[s] * n_post, n_post)
                in_delayed = True
                continue
            y = i_state[q0 : q0 + n_post]
            s = i0
            while s + 4 <= ip:
                a0 = w0 + in_ch[s] * n_post
                a1 = w0 + in_ch[s + 1] * n_post
                a2 = w0 + in_ch[s + 2] * n_post
                a3 = w0 + in_ch[s + 3] * n_post
                _axpy4(
                    y, w[a0 : a0 + n_post], w[a1 : a1 + n_post], w[a2 : a2 + n_post], w[a3 : a3 + n_post], coef[q, B0]
                )
                s += 4
            while s < ip:
                a0 = w0 + in_ch[s] * n_post
                _axpy(y, w[a0 : a0 + n_post], coef[q, B0])
                s += 1
        if in_delayed:  # delayed input arrivals due now (at n h), e.g. those of delay 0
            _apply_row(win, i_state, v_state, p_in)
        # 2. advance one step, threshold, restart
        step_start = nr
        for p in range(n_pop):
            alpha = coef[p, ALPHA]
            beta = coef[p, BETA]
            kappa = coef[p, KAPPA]
            c = coef[p, C]
            hm = coef[p, HM]
            hs = coef[p, HS]
            theta = coef[p, THETA]
            j0 = pop_off[p]
            j1 = pop_off[p + 1]
            own = False  # each neuron with its own coefficient row (rows is None: none has)
            if rows is not None:
                own = rows[1][p] != 0
                if own:
                    _advance_rows(v_state[j0:j1], i_state[j0:j1], v_adv[j0:j1], coef, rows[0][j0:j1])
            if not own:
                _advance(v_state[j0:j1], i_state[j0:j1], v_adv[j0:j1], alpha, kappa)
            rho_a = coef[p, RHO_A]  # adaptive threshold theta + a (0 without adaptation)
            if spiking[p] != 0:
                # most 32-neuron chunks have no neuron above threshold: test them vectorised
                # (a >= 0, so v_adv <= theta rules out theta + a too)
                for jc in range(j0, j1, 32):
                    je = min(jc + 32, j1)
                    if _chunk_max(v_adv[jc:je]) <= theta:
                        continue
                    for j in range(jc, je):
                        a_adv = rho_a * a_state[j]
                        if v_adv[j] - a_adv > theta:
                            v = v_state[j]
                            cur = i_state[j]
                            phi = nm.crossing_phase(v - a_state[j], v_adv[j] - a_adv, theta)
                            if nr >= cap:
                                overflow[b] = 1
                                n_rec[b] = nr
                                return
                            rec_step[b, nr] = n
                            rec_nrn[b, nr] = j
                            rec_phi[b, nr] = phi
                            rec_v[b, nr] = v
                            rec_i[b, nr] = cur
                            nr += 1
                            if spiking[p] == 2:
                                phi = 1.0  # grid timing: the spike acts at the end of its step
                            r_gain = nm.restart(c, beta, hm, hs, phi)[0]
                            if rows is not None:
                                if own:
                                    r_gain = _restart_gain(coef, rows[0][j], phi)
                            v_adv[j] = r_gain * cur
                            if j >= o0:
                                if t_first[b, j - o0] >= n_steps:
                                    t_first[b, j - o0] = n + phi
                            else:
                                counts[b, j] += 1.0
            if rows is not None:
                if own:
                    _commit_rows(v_state[j0:j1], i_state[j0:j1], v_adv[j0:j1], coef, rows[0][j0:j1])
            if not own:
                _commit(v_state[j0:j1], i_state[j0:j1], v_adv[j0:j1], beta)
            if coef[p, DELTA_A] != 0.0:
                _adapt(a_state, rec_nrn[b], rec_phi[b], step_start, nr, j0, j1, rho_a, coef[p, HA], coef[p, DELTA_A])
        # 3. deliver the spikes of step n at (n+1) h
        p_out = _row(n + 1, first, stride)
        for r in range(step_start, nr):
            j = rec_nrn[b, r]
            p = pop_of[j]
            phi = 1.0 if spiking[p] == 2 else rec_phi[b, r]
            row = j - pop_off[p]
            decay[0] = -1.0
            for kk in range(out_start[p], out_start[p + 1]):
                q, n_post, w0, q0 = _block(blk, pop_off, out_blk[kk])
                base = w0 + row * n_post
                if rows is not None:
                    if rows[1][q]:  # every target with its own decays
                        _deliver_own(
                            win, p_out, np.uint64(stride), phi, i_state, v_state, net, rows[2], out_blk[kk], base
                        )
                        continue
                bs, am = _remaining_decay(coef, q, phi, decay)
                # the arrival, in the weights' precision (delayed or not)
                scal[0], scal[1] = nm.arrival(coef[q, B0], coef[q, B0] * coef[q, C], bs, am)
                if blk[out_blk[kk], DELAYED] and blk[out_blk[kk], SUBSTEP] == 0:
                    _deliver_whole(win, p_out, scal[0], scal[1], w, d_off, base, n_post)
                    continue
                if blk[out_blk[kk], DELAYED]:  # fractional delays: the spike's scalars (scal[0] = b0 bs)
                    b0c = coef[q, B0] * coef[q, C]
                    scal[2] = 1.0 - phi
                    scal[3] = b0c * bs
                    scal[4] = b0c * am
                    scal[5] = coef[q, B0] * bs * coef[q, BETA]
                    scal[6] = b0c * bs * coef[q, BETA]
                    scal[7] = b0c * am * coef[q, ALPHA]
                    _deliver_spike(
                        win,
                        p_out,
                        np.uint32(stride),
                        scal[2],
                        scal[0],
                        scal[3],
                        scal[4],
                        scal[5],
                        scal[6],
                        scal[7],
                        arr,
                        d_off,
                        d_frac,
                        base,
                        n_post,
                    )
                    continue
                _axpy2(i_state[q0 : q0 + n_post], v_state[q0 : q0 + n_post], w[base : base + n_post], scal[0], scal[1])
        if delayed:  # delayed arrivals due at (n+1) h; the row is clear again afterwards
            _apply_row(win, i_state, v_state, p_out)
        # 4. output voltage at (n+1) h
        trace[b, n, :] = v_state[o0:n_tot]
    n_rec[b] = nr


@njit(parallel=True, cache=True, fastmath=_FASTMATH)
def forward(spikes, net, window, out, rec):
    """Simulate every sample of the batch (outputs are filled in place). ``n_slots = 0``: no
    block is delayed in this call."""
    n_batch = spikes.offsets.shape[0] - 1
    n_arr = 2
    for k in range(net.blk.shape[0]):
        if net.blk[k, DELAYED] != 0 and net.blk[k, SUBSTEP] != 0:
            n_arr = 2 * net.w.shape[0]
    arr = np.empty(n_arr, dtype=net.w.dtype)
    _call_arrivals(arr, net)
    if net.hetero.any():  # a population whose neurons have their own coefficient rows
        rows = (net.crow, net.hetero, _neuron_columns(net.coef, net.crow))
        for b in prange(n_batch):
            _forward_one(b, spikes, net, arr, window, out, rec, rows)
    else:  # the kernel compiled without their code (rows is None)
        for b in prange(n_batch):
            _forward_one(b, spikes, net, arr, window, out, rec, None)


@njit(cache=True, fastmath=_FASTMATH, nogil=True)
def _backward_one(b, spikes, net, window, rec, g_out, gw, gd, rows):
    in_off, in_step, in_ch, n_steps = spikes
    pop_off, pop_of, coef, spiking, tau_mem, blk, out_start, out_blk, in_blk = net[:9]
    w, d_off, d_frac, d_bm, d_am, n_slots, crow, hetero = net[9:]
    g_trace, g_tfirst, g_counts = g_out
    rec_step, rec_nrn, rec_phi, rec_v, rec_i, n_rec, _ = rec
    n_pop = pop_off.shape[0] - 1
    n_tot = pop_off[n_pop]
    o0 = pop_off[n_pop - 1]
    n_out = n_tot - o0
    lam_v = np.zeros(n_tot, dtype=w.dtype)
    lam_i = np.zeros(n_tot, dtype=w.dtype)
    jump_v = np.zeros(n_tot, dtype=w.dtype)
    jump_i = np.zeros(n_tot, dtype=w.dtype)
    scal = np.zeros(7, dtype=w.dtype)  # scalars in the weights' precision
    decay = np.zeros(4)  # _remaining_decay's cache
    delayed = n_slots > 0
    # coefficient gradients (``gw`` longer than ``w``; docs/engine.md, "Learnable time constants"):
    # sensitivities rho of (alpha, kappa, beta), (v, i) each, per neuron, in the weights' precision
    learn_coef = gw.shape[0] > w.shape[0]
    n_c = n_tot if learn_coef else 1
    rho = np.zeros((6, n_c), dtype=w.dtype)
    rho_old = np.zeros((6, n_c), dtype=w.dtype)
    dx = np.zeros((2, n_c), dtype=w.dtype)  # arrivals of one grid time: (i, v) per neuron
    restart_of = np.zeros(n_c, dtype=w.dtype)
    g_coef = np.zeros((coef.shape[0], N_COEF))  # every coefficient row's (populations', then neurons')
    # per target with its own coefficients: the (b0, c, hs, hm, alpha, kappa, beta) terms of its
    # delayed arrivals and the (b0, c, hs, hm) terms of its undelayed ones
    g_cols = np.zeros((7, n_c))
    # (lam_i, lam_v) by grid time in a window of 2 n_slots rows (row r: grid time first + r); an
    # arrival of step n reads grid times n .. n + n_slots, so every n_slots steps the lower half
    # slides up. Grid times after the last step read 0.
    stride = 2 * n_tot
    half = n_slots * stride
    hist = window[get_thread_id()]
    # with delays, the sensitivities rho by grid time too (the rows of hist at 3x the positions)
    rhist = np.zeros(3 * hist.shape[0] if delayed and learn_coef else 1, dtype=w.dtype)
    coef_sums = np.zeros(11)
    first = n_steps - n_slots
    if delayed:
        hist[half + stride : 2 * half] = 0.0
    # index of the first spike of every output neuron (the first-spike readout depends on it)
    first_rec = np.full(n_out, -1, dtype=np.int64)
    for r in range(n_rec[b]):
        j = rec_nrn[b, r]
        if j >= o0 and first_rec[j - o0] < 0:
            first_rec[j - o0] = r
    # threshold adaptation: a(n) at every spike, replayed as the forward pass computed it, and
    # its adjoint lam_a
    any_adapt = False
    for p in range(n_pop):
        if coef[p, DELTA_A] != 0.0:
            any_adapt = True
    n_a = n_tot if any_adapt else 1
    lam_a = np.zeros(n_a, dtype=w.dtype)
    jump_a = np.zeros(n_a, dtype=w.dtype)
    sig = np.zeros(n_a if learn_coef else 1, dtype=w.dtype)
    rec_a = np.zeros(max(n_rec[b], 1) if any_adapt else 1, dtype=w.dtype)
    a_zero = np.zeros(1, dtype=w.dtype)[0]  # a of a neuron without adaptation, in the weights' precision
    if any_adapt:
        _replay_adaptation(rec_a, rec_step[b], rec_nrn[b], rec_phi[b], n_rec[b], n_steps, coef, pop_off, n_a)
    r = n_rec[b] - 1
    ip = in_off[b + 1] - 1
    for n in range(n_steps - 1, -1, -1):
        # lam_* now hold dL/d(state at (n+1) h); the readout drives the output voltage
        for k in range(n_out):
            lam_v[o0 + k] += g_trace[b, n, k]
        if delayed and n < first:
            _slide(hist, 0, half, half)
            if learn_coef:
                _slide(rhist, 0, 3 * half, 3 * half)
            first -= n_slots
        p_out = _row(n + 1, first, stride)
        if delayed:
            _store_row(hist, lam_i, lam_v, p_out)
            if learn_coef:
                _store_rho_row(rhist, rho, p_out)
        r_hi = r
        while r >= 0 and rec_step[b, r] == n:
            r -= 1
        # jumps at the spikes of step n (read only adjoints at (n+1) h)
        for s in range(r + 1, r_hi + 1):
            j = rec_nrn[b, s]
            phi = rec_phi[b, s]
            v = rec_v[b, s]
            cur = rec_i[b, s]
            p = pop_of[j]
            row = j - pop_off[p]
            cr = p  # the neuron's coefficient row: its population's, or its own
            if rows is not None:
                cr = rows[0][j]
            alpha = coef[cr, ALPHA]
            beta = coef[cr, BETA]
            kappa = coef[cr, KAPPA]
            c = coef[cr, C]
            hm = coef[cr, HM]
            hs = coef[cr, HS]
            theta = coef[cr, THETA]
            # values and phi-derivatives at the time the spike acted (grid: end of the step);
            # dphi/dv, dphi/di below come from the interpolated crossing (for grid timing that is
            # the straight-through estimate of the spike-time sensitivity)
            phi_act = 1.0 if spiking[p] == 2 else phi
            r_gain, d_restart, em = nm.restart(c, beta, hm, hs, phi_act)
            g_phi = lam_v[j] * d_restart * cur
            if learn_coef:
                _restart_coef_grads(g_coef, cr, lam_v[j], lam_i[j], cur, c, beta, em, phi_act)
                restart_of[j] = r_gain
            decay[0] = -1.0
            for kk in range(out_start[p], out_start[p + 1]):
                q, n_post, w0, q0 = _block(blk, pop_off, out_blk[kk])
                base = w0 + row * n_post
                k = out_blk[kk]
                if rows is not None:
                    if rows[1][q]:  # every target with its own decays
                        g_phi += _adjoint_own(
                            hist,
                            rhist,
                            p_out,
                            np.uint64(stride),
                            phi_act,
                            lam_i,
                            lam_v,
                            gw,
                            gd,
                            net,
                            rows[2],
                            k,
                            base,
                            learn_coef,
                            dx,
                            g_cols,
                        )
                        continue
                hs_q = coef[q, HS]
                hm_q = coef[q, HM]
                bs, am = _remaining_decay(coef, q, phi_act, decay)
                b0 = coef[q, B0]
                b0c = b0 * coef[q, C]
                # the factors in the weights' precision (delayed or not)
                scal[0], scal[1] = nm.arrival(b0, b0c, bs, am)
                scal[2], scal[3] = nm.arrival_rate(b0, b0c, bs, am, hs_q, hm_q)
                if blk[k, DELAYED] and blk[k, SUBSTEP] == 0:
                    g_phi += _adjoint_whole(
                        hist,
                        p_out,
                        scal[0],
                        scal[1],
                        scal[2],
                        scal[3],
                        w,
                        gw,
                        gd,
                        d_off,
                        base,
                        n_post,
                    )
                    if learn_coef:
                        _delayed_coef_sums(hist, rhist, p_out, w, d_off, base, n_post, coef_sums)
                        _arrival_decay_grads(g_coef, q, coef_sums[0], coef_sums[1], b0, coef[q, C], bs, am, phi_act)
                        _pair_delayed(g_coef, q, coef_sums, b0 * bs, b0c * (bs - am))
                    continue
                if blk[k, DELAYED]:  # fractional delays: the spike's scalars, then the synapses
                    scal[0] = 1.0 - phi_act
                    scal[1] = b0 * bs
                    scal[2] = b0c * bs
                    scal[3] = b0c * am
                    scal[4] = b0 * bs * coef[q, BETA]
                    scal[5] = b0c * bs * coef[q, BETA]
                    scal[6] = b0c * am * coef[q, ALPHA]
                    g_phi += _adjoint_spike(
                        hist,
                        p_out,
                        np.uint32(stride),
                        scal[0],
                        scal[1],
                        scal[2],
                        scal[3],
                        scal[4],
                        scal[5],
                        scal[6],
                        hs_q,
                        hm_q,
                        w,
                        gw,
                        gd,
                        d_off,
                        d_frac,
                        d_bm,
                        d_am,
                        base,
                        n_post,
                    )
                    if learn_coef:
                        _fractional_coef_sums(
                            hist,
                            rhist,
                            p_out,
                            np.uint64(stride),
                            phi_act,
                            bs,
                            am,
                            coef[q, BETA],
                            coef[q, ALPHA],
                            net,
                            base,
                            n_post,
                            coef_sums,
                        )
                        _fractional_coef_grads(g_coef, q, coef_sums, b0, coef[q, C])
                    continue
                g_phi += _jump_and_grad(
                    lam_i[q0 : q0 + n_post],
                    lam_v[q0 : q0 + n_post],
                    w[base : base + n_post],
                    gw[base : base + n_post],
                    scal[0],
                    scal[1],
                    scal[2],
                    scal[3],
                )
                if learn_coef:
                    _arrival_coef_grads(
                        g_coef,
                        q,
                        lam_i[q0 : q0 + n_post],
                        lam_v[q0 : q0 + n_post],
                        w[base : base + n_post],
                        dx[0, q0 : q0 + n_post],
                        dx[1, q0 : q0 + n_post],
                        coef[q, B0],
                        coef[q, C],
                        bs,
                        am,
                        phi_act,
                    )
                if blk[k, LEARN_D]:
                    _delay_grad(
                        lam_i[q0 : q0 + n_post],
                        lam_v[q0 : q0 + n_post],
                        w[base : base + n_post],
                        gd[base : base + n_post],
                        scal[2],
                        scal[3],
                    )
            if j >= o0:
                if first_rec[j - o0] == s:
                    g_phi += g_tfirst[b, j - o0]
            # threshold adaptation a (0 without): the crossing of u = v - a, u_adv = v_adv - rho_a a
            rho_a = coef[p, RHO_A]
            adaptive = coef[p, DELTA_A] != 0.0
            a_j = rec_a[s] if adaptive else a_zero
            if adaptive:  # the jump delta_a rho_a^(1-phi) of a(n+1)
                e_a = np.exp(-(1.0 - phi_act) * coef[p, HA])
                g_phi += lam_a[j] * coef[p, DELTA_A] * coef[p, HA] * e_a
                if learn_coef:  # the jump at fixed phi; it enters a(n+1), which pairs with sig(n+1)
                    g_coef[p, DELTA_A] += lam_a[j] * e_a
                    g_coef[p, HA] -= lam_a[j] * (1.0 - phi_act) * coef[p, DELTA_A] * e_a
                    g_coef[p, RHO_A] += sig[j] * coef[p, DELTA_A] * e_a
            if phi > 0.0:
                gap, d, inv_d2, dphi_dv, dphi_di = nm.crossing_sensitivities(v, cur, a_j, alpha, kappa, rho_a, theta)
                jump_v[j] = g_phi * dphi_dv
                jump_i[j] = g_phi * dphi_di + r_gain * lam_v[j] + beta * lam_i[j]
                if adaptive:
                    jump_a[j] = g_phi * (d - gap * (1.0 - rho_a)) * inv_d2 + rho_a * lam_a[j]
                if learn_coef:  # phi = (theta - u) / (alpha v + kappa i - rho_a a - u)
                    g_coef[cr, THETA] += g_phi / d
                    g_coef[cr, RHO_A] += g_phi * gap * a_j * inv_d2
                    g_coef[cr, ALPHA] -= g_phi * gap * v * inv_d2
                    g_coef[cr, KAPPA] -= g_phi * gap * cur * inv_d2
            else:
                jump_v[j] = 0.0
                jump_i[j] = r_gain * lam_v[j] + beta * lam_i[j]
                if adaptive:
                    jump_a[j] = rho_a * lam_a[j]
            if j < o0:
                # spike-count regulariser (mlGeNN convention): a kick to lam_v at each spike
                jump_v[j] += tau_mem[p] * g_counts[b, j]
        if learn_coef:
            # arrivals at (n+1) h pair with rho(n+1); then rho steps back with lam(n+1)
            if r_hi > r:
                _pair_arrivals(g_coef, rho, dx, pop_off, 0, n_pop, crow, hetero)
            for s in range(r + 1, r_hi + 1):
                j = rec_nrn[b, s]
                for k in range(6):
                    rho_old[k, j] = rho[k, j]
            _rho_step(rho, lam_v, lam_i, coef, pop_off, crow, hetero)
            for s in range(r + 1, r_hi + 1):  # through a spike: v(n+1) = R i(n), i(n+1) = beta i(n)
                j = rec_nrn[b, s]
                beta_j = coef[crow[j], BETA]
                for k in range(0, 6, 2):
                    rho[k, j] = 0.0
                    rho[k + 1, j] = restart_of[j] * rho_old[k, j] + beta_j * rho_old[k + 1, j]
        # propagate every neuron's adjoint one step back
        for p in range(n_pop):
            if rows is not None:
                if rows[1][p]:
                    j0 = pop_off[p]
                    j1 = pop_off[p + 1]
                    _adjoint_step_rows(lam_v[j0:j1], lam_i[j0:j1], coef, rows[0][j0:j1])
                    continue
            alpha = coef[p, ALPHA]
            beta = coef[p, BETA]
            kappa = coef[p, KAPPA]
            _adjoint_step(lam_v[pop_off[p] : pop_off[p + 1]], lam_i[pop_off[p] : pop_off[p + 1]], alpha, beta, kappa)
        if any_adapt:  # a(n+1) = rho_a a(n) (+ the jumps): lam_a and its rho_a-sensitivity sig step back
            for p in range(n_pop):
                if coef[p, DELTA_A] != 0.0:
                    for j in range(pop_off[p], pop_off[p + 1]):
                        if learn_coef:
                            sig[j] = coef[p, RHO_A] * sig[j] + lam_a[j]
                        lam_a[j] = coef[p, RHO_A] * lam_a[j]
        for s in range(r + 1, r_hi + 1):
            j = rec_nrn[b, s]
            lam_v[j] = jump_v[j]
            lam_i[j] = jump_i[j]
            if any_adapt:
                lam_a[j] = jump_a[j]
        # input spikes of step n were added to i at n h
        i1 = ip
        while ip >= in_off[b] and in_step[ip] == n:
            ip -= 1
        stored = False
        p_in = _row(n, first, stride)
        for kk in range(in_blk.shape[0]):
            q, n_post, w0, q0 = _block(blk, pop_off, in_blk[kk])
            k = in_blk[kk]
            if blk[k, DELAYED]:
                if not stored:  # the adjoint at n h
                    _store_row(hist, lam_i, lam_v, p_in)
                    if learn_coef:
                        _store_rho_row(rhist, rho, p_in)
                    stored = True
                for s in range(ip + 1, i1 + 1):
                    _gather_adjoint(hist, p_in, gw, gd, d_off, w0 + in_ch[s] * n_post, n_post)
                    own = False
                    if rows is not None:
                        own = rows[1][q] != 0
                        if learn_coef and own:  # each target's own terms
                            tw = slice(w0 + in_ch[s] * n_post, w0 + in_ch[s] * n_post + n_post)
                            _input_coef_rows(
                                hist,
                                rhist,
                                p_in,
                                w[tw],
                                d_off[tw],
                                d_frac[tw],
                                d_bm[tw],
                                d_am[tw],
                                rows[2][2, q0 : q0 + n_post],
                                coef[q, B0],
                                blk[k, SUBSTEP],
                                g_cols[:, q0 : q0 + n_post],
                            )
                    if learn_coef and not own and blk[k, SUBSTEP] == 0:  # whole steps: i += w b0
                        _delayed_coef_sums(hist, rhist, p_in, w, d_off, w0 + in_ch[s] * n_post, n_post, coef_sums)
                        g_coef[q, B0] += coef_sums[0]
                        _pair_delayed(g_coef, q, coef_sums, coef[q, B0], 0.0)
                    elif learn_coef and not own:  # the synapse's own decays over r = 1 - f
                        base = w0 + in_ch[s] * n_post
                        _fractional_coef_sums(
                            hist, rhist, p_in, _ZERO, -1.0, 1.0, 1.0, 1.0, 1.0, net, base, n_post, coef_sums
                        )
                        _fractional_coef_grads(g_coef, q, coef_sums, coef[q, B0], coef[q, C])
                continue
            lam = lam_i[q0 : q0 + n_post]
            for s in range(ip + 1, i1 + 1):
                a0 = w0 + in_ch[s] * n_post
                _axpy(gw[a0 : a0 + n_post], lam, coef[q, B0])
            if learn_coef and i1 > ip:  # input arrivals i += w b0 at n h: their b0 term; they pair with rho(n)
                for s in range(ip + 1, i1 + 1):
                    a0 = w0 + in_ch[s] * n_post
                    _axpy(dx[0, q0 : q0 + n_post], w[a0 : a0 + n_post], coef[q, B0])
                    g_coef[q, B0] += _dot(w[a0 : a0 + n_post], lam)
                _pair_arrivals(g_coef, rho, dx, pop_off, q, q + 1, crow, hetero)
            own = False
            if rows is not None:
                own = rows[1][q] != 0
                if blk[k, LEARN_D] and own:  # undelayed this call, each target with its own decays
                    for s in range(ip + 1, i1 + 1):
                        a0 = w0 + in_ch[s] * n_post
                        _input_delay_grads_own(
                            gd[a0 : a0 + n_post], w[a0 : a0 + n_post], lam_i, lam_v, rows[2], q0, n_post, coef[q, B0]
                        )
            if blk[k, LEARN_D] and not own:  # undelayed this call: d/d(delay) of an arrival at n h
                scal[0], scal[1] = nm.arrival_rate(
                    coef[q, B0], coef[q, B0] * coef[q, C], 1.0, 1.0, coef[q, HS], coef[q, HM]
                )
                for s in range(ip + 1, i1 + 1):
                    a0 = w0 + in_ch[s] * n_post
                    _delay_grad(
                        lam_i[q0 : q0 + n_post],
                        lam_v[q0 : q0 + n_post],
                        w[a0 : a0 + n_post],
                        gd[a0 : a0 + n_post],
                        scal[0],
                        scal[1],
                    )

    if learn_coef:
        for j in range(n_tot):  # the targets' own arrival terms, into their rows
            if hetero[pop_of[j]]:
                g_coef[crow[j], B0] += g_cols[0, j]
                g_coef[crow[j], C] += g_cols[1, j]
                g_coef[crow[j], HS] += g_cols[2, j]
                g_coef[crow[j], HM] += g_cols[3, j]
                g_coef[crow[j], ALPHA] += g_cols[4, j]
                g_coef[crow[j], KAPPA] += g_cols[5, j]
                g_coef[crow[j], BETA] += g_cols[6, j]
        n_w = w.shape[0]
        for p in range(coef.shape[0]):
            for k in range(N_COEF):
                gw[n_w + p * N_COEF + k] += g_coef[p, k]


@njit(parallel=True, cache=True, fastmath=_FASTMATH)
def backward(spikes, net, window, rec, g_out, gw, gd, group_off):
    """Write dL/dw of sample group g (samples ``group_off[g]`` to ``group_off[g + 1] - 1``, in
    order) into ``gw[g]`` and dL/d(delay) (per step) into ``gd[g]`` (their previous content is
    ignored; ``gd`` may have one column when no block has delays; deterministic: the groups are
    the caller's, not the threads')."""
    n_groups = gw.shape[0]
    coef, blk, w, in_blk = net.coef, net.blk, net.w, net.in_blk
    cols = _neuron_columns(coef, net.crow)
    has_own = net.hetero.any()  # a population whose neurons have their own coefficient rows
    rows = (net.crow, net.hetero, cols)
    for g in prange(n_groups):
        gw[g, :] = 0
        gd[g, :] = 0
        lo = group_off[g]
        hi = group_off[g + 1]
        for b in range(lo, hi):
            if has_own:
                _backward_one(b, spikes, net, window, rec, g_out, gw[g], gd[g], rows)
            else:  # the kernel compiled without their code (rows is None)
                _backward_one(b, spikes, net, window, rec, g_out, gw[g], gd[g], None)
        for kk in range(in_blk.shape[0]):  # the delayed input synapses' factors, once per group
            k = in_blk[kk]
            if blk[k, DELAYED]:
                q = blk[k, POST]
                lo = blk[k, W_OFF]
                hi = _block_end(blk, k, w.shape[0])
                if net.hetero[q]:
                    t0 = net.pop_off[q]
                    t1 = net.pop_off[q + 1]
                    _input_grads_rows(
                        gw[g],
                        gd[g],
                        w,
                        net.d_bm,
                        net.d_am,
                        lo,
                        hi,
                        blk[k, N_POST],
                        coef[q, B0],
                        cols[0, t0:t1],
                        cols[1, t0:t1],
                        cols[2, t0:t1],
                        blk[k, SUBSTEP],
                    )
                    continue
                _input_grads(
                    gw[g],
                    gd[g],
                    w,
                    net.d_bm,
                    net.d_am,
                    lo,
                    hi,
                    coef[q, B0],
                    coef[q, B0] * coef[q, C],
                    coef[q, HS],
                    coef[q, HM],
                    blk[k, SUBSTEP],
                )


@njit(parallel=True, cache=True, fastmath=_FASTMATH)
def sum_groups(gw, out):
    """out = gw.sum(axis=0), in a fixed order (group 0 first), parallel over chunks."""
    n = gw.shape[1]
    chunk = 4096
    for c in prange((n + chunk - 1) // chunk):
        lo = c * chunk
        hi = min(n, lo + chunk)
        out[lo:hi] = gw[0, lo:hi]
        for g in range(1, gw.shape[0]):
            for t in range(lo, hi):
                out[t] += gw[g, t]


M.refresh_stale_cache(__file__, globals())  # the formulas inlined from _neuron_math are part of this module
