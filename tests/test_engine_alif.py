"""Adaptive LIF (``neuron=alif``): exact Eventprop gradients for weights and for the learnable
time constants and adaptation step, against finite differences of the same simulator and against
an independent continuous-time simulation; the adaptation's behaviour; its refusals."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from continuous_reference import ContinuousNet
from engine_cases import (
    CHANNELS,
    DURATION,
    LABEL,
    TIMES,
    assert_cross_entropy_gradients_match,
    assert_scalar_gradients_match,
    reference_case,
)
from eventkit.data import from_samples
from eventkit.engine import ALIF, LI, LIF, EventpropNet, ExpWeightedMeanV
from eventkit.plugin.testing import random_data

LEARN = {"tau_mem": [8.0, 60.0], "tau_syn": [1.0, 7.0], "tau_adapt": [5.0, 300.0], "adapt_step": [0.01, 2.0]}


def make_net(neuron, learn_tau=None, seed=3):
    return EventpropNet(
        10,
        3,
        hidden=[12, 9],
        recurrent=True,
        neuron=neuron,
        output=LI(),
        readout=ExpWeightedMeanV(),
        n_steps=80,
        dtype=torch.float64,
        init=dict(ff_mean=0.5, ff_std=0.15, rec_mean=0.0, rec_std=0.1, out_mean=0.1, out_std=0.3),
        generator=torch.Generator().manual_seed(seed),
        learn_tau=learn_tau,
    )


def test_weight_gradients_match_finite_differences():
    """Fails if the adaptation's jump terms are missing: the threshold's dependence on a in the
    spike time (dphi/da, lam_a's jump) and a's jump on the spike time (in dL/dphi)."""
    rng = np.random.default_rng(1)
    net = make_net(ALIF(tau_adapt=30.0, adapt_step=0.3))
    data = random_data(rng, 3, 10, 80, rate=(40, 80))
    assert net(data).counts.sum() > 100
    assert_cross_entropy_gradients_match(net, data, rng, min_checked=15)


def test_learnable_time_constants_and_adaptation_step_match_finite_differences():
    rng = np.random.default_rng(1)
    net = make_net(ALIF(tau_adapt=30.0, adapt_step=0.3), learn_tau=LEARN)
    data = random_data(rng, 3, 10, 80, rate=(40, 80))
    labels = torch.as_tensor(data.labels)

    def loss():
        out = net(data)
        return F.cross_entropy(out.readout * 3.0, labels), out.counts.sum().item()

    value, counts = loss()
    value.backward()
    params = net.time_constant_parameters()
    assert [n for n, p in net.named_parameters() if any(p is q for q in params)] == [
        f"{key}{k}" for k in range(2) for key in LEARN
    ]
    assert_scalar_gradients_match(params, loss, counts, 1e-6)


TAU_ADAPT, STEP = 15.0, 0.3


def _weights():
    rng = np.random.default_rng(4)
    return dict(ff0=rng.normal(1.2, 0.4, (5, 4)), rec0=rng.normal(0.0, 0.3, (5, 5)), out=rng.normal(0.0, 1.0, (2, 5)))


def _continuous_loss(w, tau_adapt=TAU_ADAPT, step=STEP):
    net = ContinuousNet(w["ff0"], w["rec0"], w["out"], duration=DURATION, adapt=(tau_adapt, step))
    mean_v, spikes = net.run(TIMES, CHANNELS)
    return F.cross_entropy(torch.tensor(mean_v)[None], torch.tensor([LABEL])).item(), [len(s) for s in spikes]


def _continuous_gradient(w, eps=1e-6):
    _, counts = _continuous_loss(w)
    grads = []
    for name in sorted(w):
        for idx in np.ndindex(w[name].shape):
            vals = []
            for sign in (1, -1):
                pert = {k: v.copy() for k, v in w.items()}
                pert[name][idx] += sign * eps
                loss, c = _continuous_loss(pert)
                assert c == counts
                vals.append(loss)
            grads.append((vals[0] - vals[1]) / (2 * eps))
    for key in ("tau_adapt", "step"):
        vals = []
        for sign in (1, -1):
            args = {"tau_adapt": TAU_ADAPT, "step": STEP}
            args[key] += sign * eps
            loss, c = _continuous_loss(w, **args)
            assert c == counts
            vals.append(loss)
        grads.append((vals[0] - vals[1]) / (2 * eps))
    return np.array(grads), counts


def _engine_gradient(w, dt):
    net, data = reference_case(
        dt,
        w,
        neuron=ALIF(tau_adapt=TAU_ADAPT, adapt_step=STEP),
        learn_tau={"tau_adapt": [5.0, 50.0], "adapt_step": [0.05, 1.0]},
    )
    out = net(data)
    F.cross_entropy(out.readout, torch.tensor([LABEL])).backward()
    flat = [getattr(net, name).grad.numpy().ravel() for name in sorted(w)]
    flat.append(np.array([net.tau_adapt0.grad.item(), net.adapt_step0.grad.item()]))
    return np.concatenate(flat), out.counts.reshape(-1).tolist()


def test_gradients_converge_to_continuous_time_as_dt_goes_to_zero():
    """The reference integrates V - A exactly between events and finds the crossings by root
    finding; its gradients (weights, tau_adapt, adapt_step) are its own finite differences.
    Fails if the engine's adaptation is another model than the one it converges to (e.g. the
    jump not decayed over the rest of the step)."""
    w = _weights()
    reference, counts = _continuous_gradient(w)
    assert sum(counts) >= 8, counts
    errors = {}
    for dt in (1.0, 0.1, 0.01):
        g, engine_counts = _engine_gradient(w, dt)
        errors[dt] = np.linalg.norm(g - reference) / np.linalg.norm(reference)
        if dt < 1:
            assert engine_counts == counts, (dt, engine_counts, counts)
    print("relative ALIF gradient error vs continuous time:", errors)
    assert errors[0.1] < errors[1.0]
    assert errors[0.01] < errors[0.1]
    assert errors[0.01] < 0.02


def test_the_threshold_adapts_under_constant_drive():
    """One neuron driven by a regular input train: as LIF it fires at a steady rate; as ALIF its
    inter-spike intervals lengthen (spike-frequency adaptation) and it fires less. Fails if a is
    not raised at spikes, not decayed, or not compared with the voltage."""
    n_steps = 300
    steps = np.arange(0, n_steps, 2)
    data = from_samples([(steps, np.zeros_like(steps))], [0], n_channels=1, n_steps=n_steps, dt=1.0, n_classes=2)
    isis = {}
    for neuron in (LIF(), ALIF(tau_adapt=100.0, adapt_step=0.5)):
        net = EventpropNet(1, 2, hidden=1, recurrent=False, neuron=neuron, n_steps=n_steps, dtype=torch.float64)
        with torch.no_grad():
            net.ff0.fill_(0.6)
        rec = net.record(data).hidden[0]
        isis[neuron.name] = np.diff(rec[:, 1])
    lif, alif = isis["lif"], isis["alif"]
    assert len(lif) > 10 and lif.max() - lif.min() <= 1  # steady (up to the grid)
    assert len(alif) < len(lif) and alif[-1] >= alif[0] + 3


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(tau_adapt=0.0), "tau_adapt: must be > 0"),
        (dict(adapt_step=-0.1), "adapt_step: must be > 0"),
        (dict(tau_adapt=float("nan")), "tau_adapt: must be > 0"),
    ],
)
def test_bad_adaptation_settings_are_one_line(kwargs, words):
    with pytest.raises(ValueError) as err:
        ALIF(**kwargs)
    assert words in str(err.value) and "Fix:" in str(err.value) and "\n" not in str(err.value)


def test_a_tau_adapt_below_dt_is_refused():
    with pytest.raises(ValueError, match="dt=2.0 ms is larger than tau_adapt=1.0 ms"):
        EventpropNet(4, 2, hidden=5, neuron=ALIF(tau_adapt=1.0), dt=2.0, n_steps=10)


def test_an_adaptation_step_range_below_zero_is_refused():
    with pytest.raises(ValueError, match=r"learn_tau.adapt_step: expected a range \[min, max\] with 0 < min < max"):
        make_net(ALIF(), learn_tau={"adapt_step": [-1.0, 1.0]})
