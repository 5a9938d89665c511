"""The loihi_cuba engine neuron: chip dynamics in float, exact gradients of its relaxation."""

import math
from dataclasses import dataclass

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from eventkit.plugin import from_samples
from eventkit.plugin import EventpropNet, ExpWeightedMeanV, SumV
from eventkit_loihi2.neuron import LoihiCUBA
from eventkit.plugin.testing import finite_difference_check, random_data, train_until, two_pattern_task


def reference_cuba(data, w_ff, w_rec, w_out, du, dv, theta, n_steps):
    """Plain-Python float CUBA network: u <- u(1-du) + dv a; v <- v(1-dv) + u; spike v > theta;
    v <- 0. Input spikes of step n enter a at step n; hidden spikes of step n enter a at n+1.
    Readout compartment: same dynamics, never fires. Returns the readout voltage [T, n_out]."""
    n_h, n_o = w_ff.shape[0], w_out.shape[0]
    u, v = np.zeros(n_h), np.zeros(n_h)
    uo, vo = np.zeros(n_o), np.zeros(n_o)
    a_h, a_o = np.zeros(n_h), np.zeros(n_o)
    steps, chans = data.sample(0)
    trace = np.zeros((n_steps, n_o))
    for n in range(n_steps):
        a_in = w_ff[:, chans[steps == n]].sum(axis=1)
        u = u * (1 - du) + dv * (a_h + a_in)
        v = v * (1 - dv) + u
        s = v > theta
        v[s] = 0.0
        uo = uo * (1 - du) + dv * a_o
        vo = vo * (1 - dv) + uo
        a_h = w_rec[:, s].sum(axis=1)
        a_o = w_out[:, s].sum(axis=1)
        trace[n] = vo + 0.0
    return trace


def test_grid_timing_is_the_chip_neuron_in_float():
    rng = np.random.default_rng(0)
    data = random_data(rng, 1, 10, 60, rate=(60, 80))
    cuba = LoihiCUBA(tau_mem=20.0, tau_syn=5.0, threshold=1.0)
    net = EventpropNet(
        10,
        3,
        hidden=12,
        recurrent=True,
        neuron=cuba,
        output=LoihiCUBA(spiking=False),
        n_steps=60,
        dtype=torch.float64,
        init=dict(ff_mean=0.6, ff_std=0.2, rec_std=0.2, out_std=0.3),
        generator=torch.Generator().manual_seed(0),
    )
    out = net(data)
    assert out.counts.sum() > 10
    i_decay, v_decay = cuba.decays(1.0)
    ref = reference_cuba(
        data,
        net.ff0.detach().numpy(),
        net.rec0.detach().numpy(),
        net.out.detach().numpy(),
        i_decay / 4096,
        v_decay / 4096,
        1.0,
        60,
    )
    np.testing.assert_allclose(out.trace[0].detach().numpy(), ref, rtol=1e-12, atol=1e-12)


def test_substep_relaxation_gradient_matches_finite_differences():
    rng = np.random.default_rng(1)
    data = random_data(rng, 3, 10, 70, rate=(50, 80))
    net = EventpropNet(
        10,
        3,
        hidden=[12, 8],
        recurrent=True,
        neuron=LoihiCUBA(timing="substep"),
        output=LoihiCUBA(spiking=False, timing="substep"),
        readout=ExpWeightedMeanV(),
        n_steps=70,
        dtype=torch.float64,
        init=dict(ff_mean=0.6, ff_std=0.2, rec_std=0.1, out_std=0.3),
        generator=torch.Generator().manual_seed(2),
    )
    out = net(data)
    assert out.counts[:, 12:].sum() > 5
    labels = torch.as_tensor(data.labels)
    scale = 2.0 / out.readout.detach().abs().max().item()
    engine, fd = finite_difference_check(net, data, lambda o: F.cross_entropy(o.readout * scale, labels), rng)
    assert np.abs(fd).max() > 0
    assert np.linalg.norm(engine - fd) / np.linalg.norm(fd) <= 1e-3


def test_grid_timing_learns():
    """The straight-through spike-time estimate trains the chip dynamics."""
    rng = np.random.default_rng(0)
    train, test = two_pattern_task(rng, 256), two_pattern_task(rng, 200)
    net = EventpropNet(
        20,
        2,
        hidden=32,
        recurrent=False,
        neuron=LoihiCUBA(),
        output=LoihiCUBA(spiking=False),
        n_steps=60,
        init=dict(ff_mean=0.4, ff_std=0.2, out_std=0.3),
        generator=torch.Generator().manual_seed(0),
    )
    assert train_until(net, train, test, max_epochs=20) >= 0.95


@dataclass(frozen=True)
class SmoothCUBA(LoihiCUBA):
    """loihi_cuba without the rounding of its decays to 4096ths: the model whose derivative the
    chip neuron's time-constant gradient passes straight through."""

    def decays(self, dt):
        return tuple(4096 * (1.0 - math.exp(-dt / tau)) for tau in (self.tau_syn, self.tau_mem))


def _tau_net(neuron, learn_tau, seed=2):
    return EventpropNet(
        10,
        3,
        hidden=[12, 8],
        recurrent=True,
        neuron=neuron,
        output=LoihiCUBA(spiking=False, timing="substep"),
        readout=ExpWeightedMeanV(),
        n_steps=70,
        dtype=torch.float64,
        init=dict(ff_mean=0.6, ff_std=0.2, rec_std=0.1, out_std=0.3),
        generator=torch.Generator().manual_seed(seed),
        learn_tau=learn_tau,
    )


def _tau_loss(net, data):
    out = net(data)
    return F.cross_entropy(out.readout * 3.0, torch.as_tensor(data.labels)), out.counts.sum().item()


def test_learned_chip_time_constants_have_the_gradient_of_the_unrounded_decays():
    """tau_mem and tau_syn of two recurrent loihi_cuba layers (sub-step timing): the gradient is
    the exact one of the same neuron with unrounded decays, checked by central differences. Fails
    if the chain from the decays to the coefficient row is wrong anywhere: the input gain
    (b0 = dv / beta depends on tau_mem), kappa = beta, the relaxation's c, hm and hs."""
    rng = np.random.default_rng(1)
    data = random_data(rng, 3, 10, 70, rate=(50, 80))
    net = _tau_net(SmoothCUBA(timing="substep"), {"tau_mem": [10.0, 60.0], "tau_syn": [2.0, 8.0]})
    loss, counts = _tau_loss(net, data)
    assert counts > 50
    loss.backward()
    params = net.time_constant_parameters()
    assert len(params) == 4
    for p in params:
        h = 1e-6 * p.item()
        values = []
        with torch.no_grad():
            for sign in (1, -1):
                p += sign * h
                value, c = _tau_loss(net, data)
                p -= sign * h
                assert c == counts
                values.append(value.item())
        fd = (values[0] - values[1]) / (2 * h)
        assert abs(fd) > 1e-6
        assert abs(p.grad.item() - fd) <= 1e-3 * abs(fd), (p.grad.item(), fd)


def test_the_chip_decays_pass_their_rounding_straight_through():
    """At time constants whose decays are whole 4096ths the chip neuron and the unrounded one
    simulate the same network, and the chip neuron's gradient is the unrounded one's (nonzero,
    though its loss is flat in tau between decay changes). Fails if the rounding is
    differentiated (zero gradient) or the forward pass leaves the chip's integers."""
    rng = np.random.default_rng(3)
    data = random_data(rng, 3, 10, 70, rate=(50, 80))
    taus = {key: -1.0 / math.log(1.0 - chip / 4096) for key, chip in (("tau_mem", 200), ("tau_syn", 700))}
    ranges = {"tau_mem": [10.0, 60.0], "tau_syn": [2.0, 8.0]}
    results = []
    for model in (LoihiCUBA, SmoothCUBA):
        net = _tau_net(model(timing="substep", **taus), ranges)
        loss, _ = _tau_loss(net, data)
        loss.backward()
        results.append((loss.item(), [p.grad.item() for p in net.time_constant_parameters()]))
    (chip_loss, chip_grads), (smooth_loss, smooth_grads) = results
    assert LoihiCUBA(**taus).decays(1.0) == (700, 200)
    assert chip_loss == pytest.approx(smooth_loss, rel=1e-9)
    assert min(abs(g) for g in chip_grads) > 0
    np.testing.assert_allclose(chip_grads, smooth_grads, rtol=1e-6)
    moved = _tau_net(LoihiCUBA(timing="substep", **{k: v * 1.0002 for k, v in taus.items()}), ranges)
    assert moved.neurons[0].decays(1.0) == (700, 200)
    assert _tau_loss(moved, data)[0].item() == chip_loss  # the same integers: the same network


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(timing="exact"), "timing"),
        (dict(tau_syn=-1.0), "tau_syn"),
        (dict(tau_mem=1e7), "tau_mem"),
    ],
)
def test_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LoihiCUBA(**kwargs).coefficients(1.0)


def test_a_spike_moved_within_its_step_only_moves_its_response():
    """Between grid points the relaxation is the continuous system with the chip's whole-step
    propagator, so moving a hidden spike in time shifts its effect on the readout and keeps its
    size: over a window much longer than the time constants, sum_t v_out depends on the number of
    hidden spikes, not on where in their steps they fire. (A relaxation that is not the chip's
    propagator makes the size depend on the sub-step phase and biases every spike-time gradient.)"""
    data = from_samples(
        [(np.array([5, 6, 7]), np.array([0, 0, 0]))], np.array([0]), n_channels=1, n_steps=400, dt=1.0, n_classes=1
    )
    net = EventpropNet(
        1,
        1,
        hidden=1,
        recurrent=False,
        neuron=LoihiCUBA(timing="substep"),
        output=LoihiCUBA(spiking=False, timing="substep"),
        readout=SumV(),
        n_steps=400,
        dtype=torch.float64,
        init=dict(ff_mean=1.0, ff_std=0.0, out_std=0.0),
        generator=torch.Generator().manual_seed(0),
    )
    per_spike, phases = [], []
    with torch.no_grad():
        net.out.fill_(1.0)
        for w in np.linspace(3.0, 30.0, 55):
            net.ff0.fill_(w)
            out = net(data)
            n = int(out.counts.sum())
            per_spike.append(out.readout.item() / n)
            rec = net.simulate(data)
            phases.extend(rec["rec_phi"][0, : rec["n_rec"][0]].tolist())
    assert np.ptp(phases) > 0.8  # the spikes visited most of the step
    per_spike = np.array(per_spike)
    assert np.ptp(per_spike) <= 2e-3 * per_spike.mean()


def test_per_neuron_time_constants_are_refused_for_the_chip_neuron():
    """loihi_cuba's input gain b0 = dv / beta follows its time constants, and the kernels hold b0
    per layer: per-neuron time constants are refused in one line before anything runs (they could
    not deploy either: one du / dv per Lava LIF process)."""
    with pytest.raises(ValueError) as err:
        EventpropNet(
            10,
            3,
            hidden=8,
            neuron=LoihiCUBA(),
            n_steps=50,
            learn_tau={"tau_mem": [10.0, 100.0], "tau_syn": [1.0, 9.0]},
            tau_per_neuron=True,
        )
    message = str(err.value)
    assert "tau_per_neuron: neuron 'loihi_cuba'" in message and "Fix: tau_per_neuron=false" in message
    assert "\n" not in message
