"""Continuous-time float64 reference for a LIF network with learnable synaptic delays.

Model (times in ms). Input channels -> hidden LIF layer (optional hidden->hidden recurrence) ->
non-spiking LI output layer. Every neuron obeys

    tau_mem dV/dt = -V + I,    tau_syn dI/dt = -I,

a hidden neuron spikes when V crosses ``theta`` upward and is reset to V = 0 (I is unchanged).
Every synapse has its own delay ``d >= 0``; delay matrices have the shape of the weights,
``(n_post, n_pre)``:

* an input spike of channel c at time t arrives at hidden j at ``t + d_ff[j, c]``: I_j += w_ff[j, c];
* a hidden spike of i at t_k arrives at hidden j at ``t_k + d_rec[j, i]`` (I_j += w_rec[j, i]) and
  at output o at ``t_k + d_out[o, i]`` (I_o += w_out[o, i]).

Arrivals are kept in a priority queue. Between queue events every neuron follows the exact closed
form of :class:`continuous_reference.ContinuousNet`, and threshold crossings are found by root
finding on it. Only events strictly before ``duration`` are simulated (an arrival at or after the
end cannot change the readout).

Ordering of simultaneous events:

1. a threshold crossing that falls exactly on the time of a queued arrival fires first (the
   crossing is caused by the dynamics before that time), the arrival is applied afterwards;
2. arrivals with equal times are applied in the order they were scheduled (first in, first out):
   input arrivals are scheduled up front in order of (input time, position in the input arrays,
   target neuron); arrivals of a hidden spike are scheduled when the spike happens, hidden targets
   in index order first, then output targets in index order;
3. hence a delay-0 arrival at a neuron's own spike time (a delay-0 self connection) is applied after
   that neuron's reset, and after every arrival already queued for that time.

The readout is the exact time average of the output voltages over [0, duration].

:func:`adjoint_gradients` computes the exact gradient of a loss of that readout with respect to
all weights and delays by the continuous-time adjoint method (Eventprop with delays), and
:func:`finite_difference_gradients` computes the same by central differences, refusing any
perturbation that changes the spike counts or the order of events.

Adjoint conventions (verified against central differences in
tests/test_continuous_reference_delays.py). ``lambda_V``, ``lambda_I`` are the adjoints of
Wunderlich & Pehle (2021); they relate to the sensitivities of the loss to the state at time t by

    dL/dV(t) = -tau_mem lambda_V(t),    dL/dI(t) = -tau_syn lambda_I(t).

With ``g = dL/d(readout)`` and the constant output drive ``a_o = g_o / T`` (0 for hidden neurons),
in reverse time (from T down to 0, both adjoints 0 at T):

    tau_mem d lambda_V / d(T - t) = -lambda_V - a,
    tau_syn d lambda_I / d(T - t) = -lambda_I + lambda_V.

An arrival of weight w at neuron j at time s contributes

    dL/dw = -tau_syn lambda_I,j(s),    dL/ds = -w [lambda_I,j(s) - lambda_V,j(s)],

and since s = t_pre + d, dL/dd is the sum of dL/ds over all arrivals of that synapse (t_pre the
input or hidden spike time). At the k-th spike of hidden neuron n (t_k, current I_n(t_k)),
lambda_I is continuous and

    lambda_V,n(t_k^-) = lambda_V,n(t_k^+)
        + [theta lambda_V,n(t_k^+) + sum_a w_a (lambda_V,j_a - lambda_I,j_a)(s_a)] / (I_n(t_k) - theta),

where the sum runs over all arrivals a caused by this spike (target j_a, weight w_a, time
s_a = t_k + d, s_a < T) and ``I_n(t_k) - theta = tau_mem dV/dt(t_k^-) > 0``. (The general
running-loss term (l_V^- - l_V^+) of the jump vanishes: the loss does not depend on hidden
voltages.) The sum in the bracket is sum_a dL/ds_a, the derivative of the loss with respect to a
common shift of all arrivals of the spike.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field

import numpy as np

from continuous_reference import ContinuousNet

SPIKE, FF, REC, OUT = "spike", "ff", "rec", "out"


@dataclass(frozen=True)
class Event:
    """One simulated event.

    ``kind``: ``"spike"`` (hidden neuron ``post`` fires its ``src[1]``-th spike), ``"ff"`` (input
    ``src = ("in", m)``, the m-th entry of the input arrays, arrives at hidden ``post``), ``"rec"``
    (spike ``src = ("h", i, k)`` of hidden i arrives at hidden ``post``) or ``"out"`` (spike
    ``src`` arrives at output ``post``). ``identity`` leaves out the time.
    """

    time: float
    kind: str
    src: tuple
    post: int

    @property
    def identity(self):
        return (self.kind, self.src, self.post)


@dataclass
class Trace:
    mean_v: np.ndarray
    spikes: list
    events: list
    spike_current: dict = field(default_factory=dict)  # (neuron, k) -> I at the spike


class DelayedContinuousNet(ContinuousNet):
    """Event-driven LIF network with per-synapse delays; see the module docstring for the model."""

    def __init__(self, w_ff, w_rec, w_out, d_ff, d_rec, d_out, tau_mem=20.0, tau_syn=5.0, theta=1.0, duration=40.0):
        w_ff = np.asarray(w_ff, dtype=np.float64)
        n_h = w_ff.shape[0]
        self.recurrent = w_rec is not None
        if self.recurrent != (d_rec is not None):
            raise ValueError("w_rec and d_rec must both be given or both be None")
        w_rec = np.zeros((n_h, n_h)) if w_rec is None else w_rec
        d_rec = np.zeros((n_h, n_h)) if d_rec is None else d_rec
        super().__init__(w_ff, w_rec, w_out, tau_mem=tau_mem, tau_syn=tau_syn, theta=theta, duration=duration)
        self.d_ff, self.d_rec, self.d_out = (np.asarray(d, dtype=np.float64) for d in (d_ff, d_rec, d_out))
        for name, w, d in (
            ("ff", self.w_ff, self.d_ff),
            ("rec", self.w_rec, self.d_rec),
            ("out", self.w_out, self.d_out),
        ):
            if w.shape != d.shape:
                raise ValueError(f"d_{name} has shape {d.shape}, w_{name} has {w.shape}")
            if not np.all(d >= 0):
                raise ValueError(f"d_{name} must be >= 0")
        if self.w_out.shape[1] != n_h or self.w_rec.shape != (n_h, n_h):
            raise ValueError("inconsistent layer sizes")

    # simulation -----------------------------------------------------------
    def simulate(self, input_times, input_channels) -> Trace:
        """Run the network; returns the readout, spike times, ordered events and spike currents."""
        input_times = np.asarray(input_times, dtype=np.float64)
        input_channels = np.asarray(input_channels)
        n_h, n_o, T = self.w_ff.shape[0], self.w_out.shape[0], self.duration
        v_h, i_h = np.zeros(n_h), np.zeros(n_h)
        v_o, i_o = np.zeros(n_o), np.zeros(n_o)
        area = np.zeros(n_o)
        spikes = [[] for _ in range(n_h)]
        events, spike_current = [], {}
        queue, seq = [], 0
        for m in np.argsort(input_times, kind="stable"):
            c = int(input_channels[m])
            for j in range(n_h):
                heapq.heappush(queue, (float(input_times[m]) + self.d_ff[j, c], seq, FF, ("in", int(m)), j))
                seq += 1
        t = 0.0
        while True:
            t_next = queue[0][0] if queue and queue[0][0] < T else T
            span = t_next - t
            first, who = self._next_spike(v_h, i_h, span)
            step = first if first is not None else span
            if step > 0:
                for k in range(n_o):
                    area[k] += self._integral(v_o[k], i_o[k], step)
                    v_o[k], i_o[k] = self._advance(v_o[k], i_o[k], step)
                for j in range(n_h):
                    v_h[j], i_h[j] = self._advance(v_h[j], i_h[j], step)
            if first is not None:
                t += step
                k = len(spikes[who])
                src = ("h", who, k)
                v_h[who] = 0.0
                spikes[who].append(t)
                spike_current[(who, k)] = i_h[who]
                events.append(Event(t, SPIKE, src, who))
                if self.recurrent:
                    for j in range(n_h):
                        heapq.heappush(queue, (t + self.d_rec[j, who], seq, REC, src, j))
                        seq += 1
                for o in range(n_o):
                    heapq.heappush(queue, (t + self.d_out[o, who], seq, OUT, src, o))
                    seq += 1
                continue
            t = t_next
            if queue and queue[0][0] < T:
                time, _, kind, src, post = heapq.heappop(queue)
                if kind == FF:
                    i_h[post] += self.w_ff[post, int(input_channels[src[1]])]
                elif kind == REC:
                    i_h[post] += self.w_rec[post, src[1]]
                else:
                    i_o[post] += self.w_out[post, src[1]]
                events.append(Event(time, kind, src, post))
                continue
            break
        return Trace(area / T, spikes, events, spike_current)

    def run(self, input_times, input_channels):
        """``(mean_v_out [n_out], spikes (list of spike-time lists per hidden neuron), events)``.

        ``events`` is the ordered list of :class:`Event` (spikes and arrivals before ``duration``).
        """
        tr = self.simulate(input_times, input_channels)
        return tr.mean_v, tr.spikes, tr.events


# loss -----------------------------------------------------------------------
def cross_entropy(mean_v, label):
    """Cross-entropy of the readout (as logits) and its gradient with respect to the readout."""
    z = np.asarray(mean_v, dtype=np.float64)
    m = z.max()
    lse = m + math.log(np.exp(z - m).sum())
    p = np.exp(z - lse)
    onehot = np.zeros_like(z)
    onehot[label] = 1.0
    return lse - z[label], p - onehot


# adjoint --------------------------------------------------------------------
def adjoint_gradients(net: DelayedContinuousNet, input_times, input_channels, dl_dmean_v, trace=None):
    """Exact gradient of a loss L(readout) by the continuous-time adjoint (see module docstring).

    ``dl_dmean_v``: dL/d(readout) [n_out]. Returns ``{"w_ff", "d_ff", "w_rec", "d_rec", "w_out",
    "d_out"}`` (the recurrent entries are None for a feed-forward net).
    """
    if trace is None:
        trace = net.simulate(input_times, input_channels)
    input_channels = np.asarray(input_channels)
    tm, ts, theta, T = net.tm, net.ts, net.theta, net.duration
    n_h, n_o = net.w_ff.shape[0], net.w_out.shape[0]
    kappa = tm / (tm - ts)
    # state: hidden 0..n_h-1, outputs n_h..; drive a = dL/dmean_v / T on outputs
    a = np.concatenate([np.zeros(n_h), np.asarray(dl_dmean_v, dtype=np.float64) / T])
    lam_v, lam_i = np.zeros(n_h + n_o), np.zeros(n_h + n_o)
    grads = {k: np.zeros_like(getattr(net, k)) for k in ("w_ff", "d_ff", "w_rec", "d_rec", "w_out", "d_out")}
    shift = {}  # (neuron, k) -> sum over the spike's arrivals of w (lambda_V - lambda_I)(arrival)

    def back(s):  # exact reverse-time propagation over a span s >= 0
        nonlocal lam_v, lam_i
        if s <= 0:
            return
        u0 = lam_v + a
        em, es = math.exp(-s / tm), math.exp(-s / ts)
        lam_i = -a + kappa * u0 * em + (lam_i + a - kappa * u0) * es
        lam_v = u0 * em - a

    t = T
    for ev in reversed(trace.events):
        back(t - ev.time)
        t = ev.time
        if ev.kind == SPIKE:
            n = ev.post
            key = ev.src[1:]
            jump = (theta * lam_v[n] + shift.pop(key, 0.0)) / (trace.spike_current[key] - theta)
            lam_v[n] += jump
            continue
        if ev.kind == FF:
            row, col, w_name, d_name, x = ev.post, int(input_channels[ev.src[1]]), "w_ff", "d_ff", ev.post
        elif ev.kind == REC:
            row, col, w_name, d_name, x = ev.post, ev.src[1], "w_rec", "d_rec", ev.post
        else:
            row, col, w_name, d_name, x = ev.post, ev.src[1], "w_out", "d_out", n_h + ev.post
        w = getattr(net, w_name)[row, col]
        grads[w_name][row, col] += -ts * lam_i[x]
        dl_ds = -w * (lam_i[x] - lam_v[x])
        grads[d_name][row, col] += dl_ds
        if ev.kind != FF:
            key = ev.src[1:]
            shift[key] = shift.get(key, 0.0) + dl_ds
    assert not shift, "arrivals without their spike"
    if not net.recurrent:
        grads["w_rec"] = grads["d_rec"] = None
    return grads


# finite differences ---------------------------------------------------------
def finite_difference_gradients(make_loss, params: dict, eps, check_order=True):
    """Central differences of a scalar loss with respect to every entry of every array in ``params``.

    ``make_loss(params) -> (loss, spikes, events)`` (``spikes``: spike-time lists per neuron,
    ``events``: the ordered :class:`Event` list of :meth:`DelayedContinuousNet.run`). Entries of
    ``params`` that are None are skipped (and returned as None). Every perturbation must leave the
    spike counts and, with ``check_order``, the order of events (by identity, not time) unchanged;
    otherwise an AssertionError names the parameter entry. The loss is kinked in a delay where an
    arrival crosses another event (e.g. its target's own spike), and a step across a kink gives a
    wrong derivative.
    """
    params = {k: (None if v is None else np.asarray(v, dtype=np.float64)) for k, v in params.items()}
    _, spikes0, events0 = make_loss(params)
    counts0 = [len(s) for s in spikes0]
    order0 = [e.identity for e in events0]
    grads = {}
    for name, arr in params.items():
        if arr is None:
            grads[name] = None
            continue
        g = np.zeros_like(arr)
        for idx in np.ndindex(arr.shape):
            vals = []
            for sign in (1.0, -1.0):
                pert = {k: (None if v is None else v.copy()) for k, v in params.items()}
                pert[name][idx] += sign * eps
                loss, spikes, events = make_loss(pert)
                where = f"{name}[{', '.join(map(str, idx))}] {'+' if sign > 0 else '-'} {eps:g}"
                counts = [len(s) for s in spikes]
                assert counts == counts0, f"perturbing {where} changed the spike counts {counts0} -> {counts}"
                if check_order:
                    order = [e.identity for e in events]
                    if order != order0:
                        pos = next(
                            (p for p, (x, y) in enumerate(zip(order0, order)) if x != y), min(len(order0), len(order))
                        )
                        raise AssertionError(
                            f"perturbing {where} changed the order of events at position {pos}: "
                            f"{order0[pos:pos + 2]} -> {order[pos:pos + 2]}"
                        )
                vals.append(loss)
            g[idx] = (vals[0] - vals[1]) / (2 * eps)
        grads[name] = g
    return grads


def delayed_params(seed=6, recurrent=True):
    """The tests' network: 4 inputs, 5 hidden, 2 outputs, delays ~ U(0, 6) ms. Seed 6, on the
    tests' input: 15 hidden spikes (2-4 per neuron), no two of the 195 events closer than 3.7 us."""
    rng = np.random.default_rng(seed)
    p = dict(
        w_ff=rng.normal(1.0, 0.4, (5, 4)),
        w_rec=rng.normal(0.0, 0.3, (5, 5)),
        w_out=rng.normal(0.0, 1.0, (2, 5)),
        d_ff=rng.uniform(0, 6, (5, 4)),
        d_rec=rng.uniform(0, 6, (5, 5)),
        d_out=rng.uniform(0, 6, (2, 5)),
    )
    if not recurrent:
        p["w_rec"] = p["d_rec"] = None
    return p


def min_event_gap(events):
    """Smallest time between consecutive events (how far the run is from a tie)."""
    times = np.array([e.time for e in events])
    return float(np.diff(times).min()) if len(times) > 1 else math.inf
