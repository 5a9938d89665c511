"""Where the engine's gradients are not the exact continuous-time gradient (docs/engine.md,
section "What is exact"), each shown on a network small enough to reason about.

* ``max_v``: the gradient is the exact slope of the grid maximum (it matches finite differences
  of the simulator) but, when the maximum sits at a hidden spike's arrival, it does not converge
  to the gradient of the continuous-time maximum as dt -> 0 (``mean_v`` on the same network
  does).
* ``loihi_cuba`` with grid timing (the Loihi 2 plugin): shown in
  plugins/eventkit_loihi2/tests/test_exactness_claims_loihi.py.

The regulariser's surrogate kick is tested in tests/test_engine_behaviour.py.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from continuous_reference import ContinuousNet
from eventkit.data import from_samples
from eventkit.engine import EventpropNet, MaxV, MeanV
from eventkit.plugin.testing import spike_pattern

# Input 0 at 0 ms drives hidden neuron A (fires once, ~2.8 ms), input 1 at 2 ms drives hidden
# neuron B (fires once, ~5.3 ms). A excites the output, B inhibits it strongly: the output
# voltage rises until B's spike arrives and falls from then on, so its maximum over time sits
# at B's spike, a kink of V (dV/dt jumps from positive to negative).
DURATION = 40.0
TIMES = np.array([0.0, 2.0])
CHANNELS = np.array([0, 1])
W_FF = np.array([[10.0, 0.0], [0.0, 9.0]])
W_OUT = np.array([[2.0, -6.0]])
B = 1  # the inhibiting hidden neuron


class ContinuousMax(ContinuousNet):
    """The continuous reference (exact event-driven float64), also tracking max_t V_out(t) and
    when it is reached. Between events V(s) = (V0 - c I0) e^(-s/tau_mem) + c I0 e^(-s/tau_syn)
    has at most one extremum, so an interval's maximum is at an end or at that extremum."""

    def run_max(self, input_times, input_channels):
        n_o = self.w_out.shape[0]
        best, when = np.full(n_o, -np.inf), np.zeros(n_o)

        def track(k, v, i, t, step):
            value, at = self._interval_max(v, i, step)
            if value > best[k]:
                best[k], when[k] = value, t + at

        spikes = self.simulate(input_times, input_channels, track)
        return best, when, spikes

    def _interval_max(self, v, i, span):
        candidates = [(v, 0.0), (self._advance(v, i, span)[0], span)]
        a, b = v - self.c * i, self.c * i
        if a != 0 and b != 0:
            ratio = -(a / self.tm) / (b / self.ts)
            if ratio > 0:
                s = math.log(ratio) / (1 / self.tm - 1 / self.ts)
                if 0 < s < span:
                    candidates.append((self._advance(v, i, s)[0], s))
        return max(candidates)


def _continuous(w_ff):
    net = ContinuousMax(w_ff, np.zeros((2, 2)), W_OUT, duration=DURATION)
    best, when, spikes = net.run_max(TIMES, CHANNELS)
    mean_v, _ = ContinuousNet(w_ff, np.zeros((2, 2)), W_OUT, duration=DURATION).run(TIMES, CHANNELS)
    return best[0], when[0], mean_v[0], spikes


def _continuous_gradients(eps=1e-6):
    """d max_t V / d w_ff and d mean_t V / d w_ff by central differences of the continuous
    reference (no perturbation changes a spike count)."""
    _, _, _, spikes = _continuous(W_FF)
    g_max, g_mean = np.zeros_like(W_FF), np.zeros_like(W_FF)
    for idx in np.ndindex(W_FF.shape):
        values = []
        for sign in (1, -1):
            w = W_FF.copy()
            w[idx] += sign * eps
            best, _, mean_v, sp = _continuous(w)
            assert [len(s) for s in sp] == [len(s) for s in spikes]
            values.append((best, mean_v))
        g_max[idx] = (values[0][0] - values[1][0]) / (2 * eps)
        g_mean[idx] = (values[0][1] - values[1][1]) / (2 * eps)
    return g_max, g_mean


def _engine(readout, dt):
    n_steps = int(round(DURATION / dt))
    data = from_samples(
        [(np.round(TIMES / dt).astype(int), CHANNELS)], [0], n_channels=2, n_steps=n_steps, dt=dt, n_classes=1
    )
    net = EventpropNet(2, 1, hidden=2, recurrent=False, readout=readout, dt=dt, n_steps=n_steps, dtype=torch.float64)
    with torch.no_grad():
        net.ff0.copy_(torch.tensor(W_FF))
        net.out.copy_(torch.tensor(W_OUT))
    return net, data


def _engine_gradient(readout, dt):
    net, data = _engine(readout, dt)
    out = net(data)
    out.readout.sum().backward()
    return net.ff0.grad.numpy().copy(), net.out.grad.numpy().copy(), out


def test_the_continuous_maximum_sits_at_the_inhibitory_spike():
    """The premise of the max_v test below: one spike per hidden neuron, and the continuous
    output voltage peaks exactly when B's spike arrives (before its own smooth peak)."""
    _, when, _, spikes = _continuous(W_FF)
    assert [len(s) for s in spikes] == [1, 1]
    assert abs(when - spikes[B][0]) < 1e-9, (when, spikes)


def test_max_v_gradient_is_the_exact_slope_of_the_grid_maximum():
    """Finite differences of the engine's own max_n V(n dt) agree with its gradient (the grid
    maximum's step does not move under these perturbations)."""
    eps = 1e-6
    for dt in (0.1, 0.01):
        g_ff, g_out, out = _engine_gradient(MaxV(), dt)
        assert out.counts.reshape(-1).tolist() == [1.0, 1.0]
        net, data = _engine(MaxV(), dt)
        base_pattern = spike_pattern(net, data)
        base_argmax = int(net(data).trace[0, :, 0].argmax())
        for name, grad in (("ff0", g_ff), ("out", g_out)):
            param = getattr(net, name)
            fd = np.zeros_like(grad)
            for idx in np.ndindex(grad.shape):
                values = []
                for sign in (1, -1):
                    with torch.no_grad():
                        param[idx] += sign * eps
                        out = net(data)
                        assert spike_pattern(net, data) == base_pattern
                        assert int(out.trace[0, :, 0].argmax()) == base_argmax
                        values.append(out.readout.item())
                        param[idx] -= sign * eps
                fd[idx] = (values[0] - values[1]) / (2 * eps)
            assert np.abs(fd).max() > 0
            np.testing.assert_allclose(grad, fd, rtol=1e-4, atol=1e-7 * np.abs(fd).max(), err_msg=f"{name} at dt={dt}")


def test_max_v_gradient_does_not_converge_to_the_continuous_maximum():
    """At a kink the grid maximum is the grid point just before or just after B's spike: its
    slope in B's input weight is 0 or includes the post-spike decline, never the continuous
    maximum's slope. mean_v on the same network converges, so the reference and the setup are
    right and the gap is max_v's."""
    g_max, g_mean = _continuous_gradients()
    assert abs(g_max[B, 1]) > 1e-3  # B's input weight moves B's spike and so the maximum
    max_errors, mean_errors = {}, {}
    for dt in (0.1, 0.01, 0.001):
        g, _, out = _engine_gradient(MaxV(), dt)
        assert out.counts.reshape(-1).tolist() == [1.0, 1.0]
        max_errors[dt] = np.linalg.norm(g - g_max) / np.linalg.norm(g_max)
        g, _, _ = _engine_gradient(MeanV(), dt)
        mean_errors[dt] = np.linalg.norm(g - g_mean) / np.linalg.norm(g_mean)
    print("relative gradient error vs continuous time: max_v", max_errors, "mean_v", mean_errors)
    assert all(err > 0.5 for err in max_errors.values()), max_errors
    assert mean_errors[0.001] < mean_errors[0.01] < mean_errors[0.1]
    assert mean_errors[0.001] < 1e-3, mean_errors
