"""The continuous-time reference with synaptic delays: reduces to the delay-free reference, its
adjoint gradient equals central differences for weights and delays, and delays act."""

import numpy as np
import pytest

from continuous_reference import ContinuousNet
from continuous_reference_delays import (
    DelayedContinuousNet,
    adjoint_gradients,
    cross_entropy,
    delayed_params,
    finite_difference_gradients,
    min_event_gap,
)

# the weights and input of tests/test_engine_continuous.py
DURATION = 40.0
TIMES = np.array([0, 1, 2, 3, 5, 6, 8, 10, 11, 14, 15, 19, 22, 25, 28], dtype=float)
CHANNELS = np.array([0, 1, 2, 3, 0, 2, 1, 3, 0, 1, 2, 0, 3, 1, 2])
LABEL = 1
EPS = 1e-6


def engine_test_weights():
    rng = np.random.default_rng(4)
    return dict(ff0=rng.normal(1.0, 0.4, (5, 4)), rec0=rng.normal(0.0, 0.3, (5, 5)), out=rng.normal(0.0, 1.0, (2, 5)))


def make_loss(p):
    mean_v, spikes, events = DelayedContinuousNet(**p, duration=DURATION).run(TIMES, CHANNELS)
    return cross_entropy(mean_v, LABEL)[0], spikes, events


def test_zero_delays_match_the_delay_free_reference():
    w = engine_test_weights()
    ref_v, ref_spikes = ContinuousNet(w["ff0"], w["rec0"], w["out"], duration=DURATION).run(TIMES, CHANNELS)
    zeros = {k: np.zeros_like(v) for k, v in w.items()}
    net = DelayedContinuousNet(
        w["ff0"], w["rec0"], w["out"], zeros["ff0"], zeros["rec0"], zeros["out"], duration=DURATION
    )
    mean_v, spikes, events = net.run(TIMES, CHANNELS)
    np.testing.assert_allclose(mean_v, ref_v, rtol=0, atol=1e-12)
    assert [len(s) for s in spikes] == [len(s) for s in ref_spikes]
    assert sum(len(s) for s in spikes) >= 8
    for s, r in zip(spikes, ref_spikes):
        np.testing.assert_allclose(s, r, rtol=0, atol=1e-12)
    # tie order: a spike's delay-0 arrivals follow it at the same time, its own (self) arrival
    # after the reset, hidden targets first, then outputs
    for p, ev in enumerate(events):
        if ev.kind == "spike":
            follow = events[p + 1 : p + 1 + 7]
            expected = [("rec", j) for j in range(5)] + [("out", 0), ("out", 1)]
            assert [(f.kind, f.post) for f in follow] == expected
            assert all(f.src == ev.src and f.time == ev.time for f in follow)


@pytest.mark.parametrize("recurrent", [True, False], ids=["recurrent", "feedforward"])
def test_adjoint_equals_finite_differences_for_weights_and_delays(recurrent):
    p = delayed_params(recurrent=recurrent)
    net = DelayedContinuousNet(**p, duration=DURATION)
    trace = net.simulate(TIMES, CHANNELS)
    counts = [len(s) for s in trace.spikes]
    if recurrent:
        assert counts == [2, 4, 3, 2, 4], counts
    assert min(counts) >= 1 and sum(counts) >= 10, counts
    assert min_event_gap(trace.events) > 1e-3
    _, dl_dv = cross_entropy(trace.mean_v, LABEL)
    adjoint = adjoint_gradients(net, TIMES, CHANNELS, dl_dv, trace)
    fd = finite_difference_gradients(make_loss, p, EPS)
    for name, g in fd.items():
        if g is None:
            assert adjoint[name] is None
            continue
        err = np.linalg.norm(adjoint[name] - g) / np.linalg.norm(g)
        assert np.linalg.norm(g) > 1e-4, name
        assert err <= 1e-5, (name, err)
        np.testing.assert_allclose(adjoint[name], g, rtol=1e-4, atol=1e-8, err_msg=name)


def test_input_delays_shift_the_response():
    p = delayed_params(recurrent=False)
    p["d_ff"] = np.zeros_like(p["d_ff"])
    base_v, base_spikes, base_events = DelayedContinuousNet(**p, duration=DURATION).run(TIMES, CHANNELS)
    shift = 2.5
    p["d_ff"] = np.full_like(p["d_ff"], shift)
    v, spikes, events = DelayedContinuousNet(**p, duration=DURATION).run(TIMES, CHANNELS)
    assert np.abs(v - base_v).max() > 1e-3  # the readout sees the delay
    # with no recurrence and one common input delay, every hidden spike moves by exactly that delay
    assert sum(len(s) for s in spikes) >= 5
    for s, b in zip(spikes, base_spikes):
        b = [x + shift for x in b if x + shift < DURATION]
        np.testing.assert_allclose(s, b, rtol=0, atol=1e-9)
    arrivals = [e for e in events if e.kind == "ff"]
    for e in arrivals:
        assert e.time == pytest.approx(TIMES[e.src[1]] + shift, abs=1e-12)
    # a single synapse's delay moves only its own arrivals and changes the readout
    p["d_ff"][2, CHANNELS[0]] += 1.0
    v2, _, events2 = DelayedContinuousNet(**p, duration=DURATION).run(TIMES, CHANNELS)
    assert np.abs(v2 - v).max() > 1e-4
    moved = {(e.src, e.post): e.time for e in events2 if e.kind == "ff"}
    for e in arrivals:
        expect = e.time + (1.0 if (e.post, CHANNELS[e.src[1]]) == (2, CHANNELS[0]) else 0.0)
        if expect < DURATION:
            assert moved[(e.src, e.post)] == pytest.approx(expect, abs=1e-12)


def test_finite_differences_refuse_a_step_across_a_kink():
    p = delayed_params()
    _, spikes, _ = make_loss(p)
    # move the arrivals of hidden 1 at hidden 4 earlier so that the first lands on hidden 4's
    # next spike at t4; that spike and everything before it stay as they are (the arrivals were later)
    i, j = 1, 4
    t1 = spikes[i][0]
    m, t4 = next((m, t) for m, t in enumerate(spikes[j]) if t > t1)
    assert t1 < t4 < t1 + p["d_rec"][j, i] and p["w_rec"][j, i] > 0.5
    p["d_rec"][j, i] = t4 - t1
    _, tied, _ = make_loss(p)
    np.testing.assert_allclose(tied[j][: m + 1], spikes[j][: m + 1], rtol=0, atol=1e-12)

    def loss_at(d):
        q = {**p, "d_rec": p["d_rec"].copy()}
        q["d_rec"][j, i] = d
        return make_loss(q)[0]

    # the loss is kinked there: the one-sided slopes differ (lambda_V of neuron 4 jumps at t4)
    d0, h = p["d_rec"][j, i], 1e-5
    left = (loss_at(d0) - loss_at(d0 - h)) / h
    right = (loss_at(d0 + h) - loss_at(d0)) / h
    assert abs(left - right) > 1e-3 * max(abs(left), abs(right)), (left, right)
    # any step that moves the arrival and the spike across each other is refused, naming the entry
    refused = r"perturbing d_rec\[\d, \d\] [+-] 1e-06 changed the order of events" r".*\('rec', \('h', 1, 0\), 4\)"
    with pytest.raises(AssertionError, match=refused):
        finite_difference_gradients(lambda q: make_loss({**p, **q}), {"d_rec": p["d_rec"]}, EPS)
