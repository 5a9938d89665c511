"""An independent float64 continuous-time simulation of a small recurrent LIF network.

Exact event-driven integration: between events every neuron follows the closed form
V(s) = (V0 - c I0) e^{-s/tau_mem} + c I0 e^{-s/tau_syn}; threshold crossings are found by root
finding on that closed form (at most one extremum per interval, so the first crossing is
bracketed exactly). Spikes reach their targets instantly. The readout is the exact time average
of the LI output voltages over [0, T]. Nothing here shares code with the engine.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import brentq


class ContinuousNet:
    def __init__(
        self, w_ff, w_rec, w_out, tau_mem=20.0, tau_syn=5.0, theta=1.0, duration=40.0, out_taus=None, adapt=None
    ):
        """``tau_mem``, ``tau_syn``: numbers, or one per hidden neuron (then ``out_taus`` is
        needed); ``out_taus``: (tau_mem, tau_syn) of the output neurons when they differ from the hidden
        ones'; ``adapt``: (tau_adapt, adapt_step) for adaptive hidden neurons (threshold
        theta + A, tau_adapt dA/dt = -A, A += adapt_step at each spike)."""
        self.adapt = adapt
        self.w_ff, self.w_rec, self.w_out = (np.asarray(w, dtype=np.float64) for w in (w_ff, w_rec, w_out))
        self.tm, self.ts, self.theta, self.duration = tau_mem, tau_syn, theta, duration
        self.c = tau_syn / (tau_syn - tau_mem)
        n_h = self.w_rec.shape[0]
        tm_h, ts_h = np.broadcast_to(tau_mem, n_h).astype(float), np.broadcast_to(tau_syn, n_h).astype(float)
        self.hidden_taus = [(tm, ts, ts / (ts - tm)) for tm, ts in zip(tm_h, ts_h)]  # per hidden neuron
        tm_o, ts_o = out_taus if out_taus is not None else (tau_mem, tau_syn)
        self.out = (tm_o, ts_o, ts_o / (ts_o - tm_o))

    # closed forms ---------------------------------------------------------
    def _advance(self, v, i, s, taus=None):
        tm, ts, c = taus if taus is not None else (self.tm, self.ts, self.c)
        return (v - c * i) * math.exp(-s / tm) + c * i * math.exp(-s / ts), i * math.exp(-s / ts)

    def _integral(self, v, i, s):
        tm, ts, c = self.out
        return (v - c * i) * tm * (1 - math.exp(-s / tm)) + c * i * ts * (1 - math.exp(-s / ts))

    def _first_adaptive_crossing(self, v0, i0, a0, span, j):
        """The first s in (0, span] with V(s) - A(s) = theta: V - A is a sum of three exponentials,
        so the first sign change is bracketed on a fine grid, then refined."""
        f = lambda s: self._advance(v0, i0, s, self.hidden_taus[j])[0] - a0 * math.exp(-s / self.adapt[0]) - self.theta
        grid = np.linspace(0.0, span, 801)
        values = [f(s) for s in grid]
        for k in range(1, len(grid)):
            if values[k - 1] < 0 <= values[k]:
                return brentq(f, grid[k - 1], grid[k], xtol=1e-15, rtol=1e-15)
        return None

    def _first_crossing(self, v0, i0, span, j):
        taus = tm, ts, c = self.hidden_taus[j]
        f = lambda s: self._advance(v0, i0, s, taus)[0] - self.theta
        a, b = v0 - c * i0, c * i0
        s_ext = None
        # dV/ds = -a/tm e^{-s/tm} - b/ts e^{-s/ts} = 0
        if a != 0 and b != 0:
            ratio = -(a / tm) / (b / ts)
            if ratio > 0:
                s = math.log(ratio) / (1 / tm - 1 / ts)
                if 0 < s < span:
                    s_ext = s
        if s_ext is not None and f(s_ext) > 0 and f(0) < 0:
            return brentq(f, 0.0, s_ext, xtol=1e-15, rtol=1e-15)
        if f(span) > 0:
            lo = s_ext if s_ext is not None and f(s_ext) < 0 else 0.0
            return brentq(f, lo, span, xtol=1e-15, rtol=1e-15)
        return None

    def _next_spike(self, v_h, i_h, span):
        """(time from now, neuron) of the first hidden threshold crossing within ``span``, or
        (None, -1)."""
        first, who = None, -1
        if span > 0:
            for j in range(len(v_h)):
                if self.adapt is not None:
                    s = self._first_adaptive_crossing(v_h[j], i_h[j], self.a_h[j], span, j)
                else:
                    s = self._first_crossing(v_h[j], i_h[j], span, j)
                if s is not None and (first is None or s < first):
                    first, who = s, j
        return first, who

    # simulation -----------------------------------------------------------
    def simulate(self, input_times, input_channels, observe):
        """Run the network event by event; before each interval of length ``step`` starting at
        ``t``, ``observe(k, v, i, t, step)`` sees output neuron k's state. Returns the hidden
        spike times (list per neuron)."""
        n_h, n_o = self.w_rec.shape[0], self.w_out.shape[0]
        v_h, i_h = np.zeros(n_h), np.zeros(n_h)
        v_o, i_o = np.zeros(n_o), np.zeros(n_o)
        self.a_h = np.zeros(n_h)
        spikes = [[] for _ in range(n_h)]
        order = np.argsort(input_times, kind="stable")
        events = [(float(input_times[k]), int(input_channels[k])) for k in order]
        t, e = 0.0, 0
        while True:
            t_next = events[e][0] if e < len(events) else self.duration
            span = t_next - t
            first, who = self._next_spike(v_h, i_h, span)
            step = first if first is not None else span
            for k in range(n_o):
                observe(k, v_o[k], i_o[k], t, step)
                v_o[k], i_o[k] = self._advance(v_o[k], i_o[k], step, self.out)
            for j in range(n_h):
                v_h[j], i_h[j] = self._advance(v_h[j], i_h[j], step, self.hidden_taus[j])
            if self.adapt is not None:
                self.a_h *= math.exp(-step / self.adapt[0])
            t += step
            if first is not None:
                v_h[who] = 0.0
                if self.adapt is not None:
                    self.a_h[who] += self.adapt[1]
                spikes[who].append(t)
                i_h += self.w_rec[:, who]
                i_o += self.w_out[:, who]
                continue
            if e < len(events):
                i_h += self.w_ff[:, events[e][1]]
                e += 1
                continue
            return spikes

    def run(self, input_times, input_channels):
        """Time-averaged output voltage [n_out] and hidden spike times (list per neuron)."""
        area = np.zeros(self.w_out.shape[0])

        def integrate(k, v, i, t, step):
            area[k] += self._integral(v, i, step)

        spikes = self.simulate(input_times, input_channels, integrate)
        return area / self.duration, spikes
