"""Engine gradients against central finite differences of the same simulator (float64)."""

import zlib

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from eventkit.engine import (LIF, EventpropNet, ExpWeightedMeanV, FirstSpike, MaxV, MeanV, PerStepV,
                             SumV)
from eventkit.testing import finite_difference_check, random_data

READOUTS = [SumV(), MeanV(), ExpWeightedMeanV(), MaxV(), FirstSpike(tau0=2.0), PerStepV()]


def make_net(readout, seed, ff_mean=0.5, hidden=(12, 9)):
    return EventpropNet(
        n_in=10, n_out=3, hidden=list(hidden), recurrent=True,
        output=LIF(threshold=0.3) if readout.needs_output_spikes else EventpropNet.__init__.__kwdefaults__["output"],
        readout=readout, n_steps=80, dtype=torch.float64,
        init=dict(ff_mean=ff_mean, ff_std=0.15, rec_mean=0.0, rec_std=0.1, out_mean=0.1, out_std=0.3),
        generator=torch.Generator().manual_seed(seed),
    )


def loss_for(kind, labels, n_out, scale=1.0):
    """Readouts differ in magnitude (sums over T vs means): ``scale`` (a constant) brings them to
    O(1) so that the losses are not saturated."""
    def _scaled(r):
        return r * scale

    if kind == "ce":
        return lambda out: F.cross_entropy(
            _scaled(out.readout if out.readout.dim() == 2 else out.readout.sum(1)), labels)
    target = F.one_hot(labels, n_out).to(torch.float64)

    def mse(out):
        r = _scaled(out.readout)
        if r.dim() == 3:  # per-step: target held over time
            return F.mse_loss(r, target[:, None, :].expand_as(r))
        return F.mse_loss(r, target)
    return mse


@pytest.mark.parametrize("readout", READOUTS, ids=lambda r: r.name)
@pytest.mark.parametrize("loss_kind", ["ce", "mse"])
def test_gradient_matches_finite_differences(readout, loss_kind):
    rng = np.random.default_rng(zlib.crc32(f"{readout.name}-{loss_kind}".encode()))
    net = make_net(readout, seed=int(rng.integers(1 << 30)))
    data = random_data(rng, 3, 10, 80, rate=(40, 80))
    labels = torch.as_tensor(data.labels)
    out = net(data)
    n0 = net.hidden[0]
    assert out.counts[:, :n0].sum() > 20 and out.counts[:, n0:].sum() > 10, "both layers must spike"
    if readout.needs_output_spikes:
        assert (out.t_first < net.n_steps * net.dt).any(), "output neurons must spike"
    scale = 2.0 / max(out.readout.detach().abs().max().item(), 1e-3)
    engine, fd = finite_difference_check(net, data, loss_for(loss_kind, labels, 3, scale), rng)
    assert len(engine) >= 15
    assert np.abs(fd).max() > 0
    err = np.linalg.norm(engine - fd) / np.linalg.norm(fd)
    assert err <= 1e-3, (err, engine, fd)
    # entry-wise too, relative to the gradient's scale
    np.testing.assert_allclose(engine, fd, rtol=1e-3, atol=1e-6 * np.abs(fd).max())


def test_gradient_with_many_spikes_per_neuron():
    rng = np.random.default_rng(7)
    net = make_net(ExpWeightedMeanV(), seed=3, ff_mean=0.6)
    data = random_data(rng, 2, 10, 80, rate=(80, 120))
    out = net(data)
    per_neuron = out.counts.mean().item()
    assert per_neuron > 5, per_neuron  # neurons fire many times per sample
    labels = torch.as_tensor(data.labels)
    engine, fd = finite_difference_check(net, data, loss_for("ce", labels, 3), rng)
    assert np.linalg.norm(engine - fd) / np.linalg.norm(fd) <= 1e-3


def test_single_layer_feedforward_and_deep_network():
    rng = np.random.default_rng(11)
    for hidden, rec in (([15], False), ([10, 8, 6], [True, False, True])):
        net = EventpropNet(10, 3, hidden=hidden, recurrent=rec, n_steps=60, dtype=torch.float64,
                           init=dict(ff_mean=0.7, ff_std=0.2, rec_std=0.1, out_std=0.3),
                           generator=torch.Generator().manual_seed(5))
        data = random_data(rng, 2, 10, 60, rate=(40, 70))
        out = net(data)
        assert out.counts[:, -hidden[-1]:].sum() > 5, "the last hidden layer must spike"
        labels = torch.as_tensor(data.labels)
        scale = 2.0 / max(out.readout.detach().abs().max().item(), 1e-3)
        engine, fd = finite_difference_check(net, data, loss_for("ce", labels, 3, scale), rng, per_param=4)
        assert np.abs(fd).max() > 0
        assert np.linalg.norm(engine - fd) / np.linalg.norm(fd) <= 1e-3


def test_regulariser_gradient_reaches_hidden_weights_and_lowers_activity():
    """The spike-count term has no exact gradient (counts are piecewise constant); it enters the
    jumps. Check it pushes activity toward the target."""
    from eventkit.engine import spike_count_regularizer

    rng = np.random.default_rng(3)
    data = random_data(rng, 8, 10, 80, rate=(60, 90))
    net = make_net(MeanV(), seed=2, ff_mean=0.6)
    opt = torch.optim.SGD(net.parameters(), lr=1e-3)
    first = net(data).counts.mean().item()
    for _ in range(30):
        opt.zero_grad()
        out = net(data)
        spike_count_regularizer(out.counts, strength=1e-3, nu=1.0).backward()
        opt.step()
    last = net(data).counts.mean().item()
    assert last < 0.7 * first, (first, last)
