"""The loihi_cuba engine neuron: chip dynamics in float, exact gradients of its relaxation."""

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
