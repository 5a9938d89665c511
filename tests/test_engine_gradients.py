"""Engine gradients against central finite differences of the same simulator (float64)."""

import zlib

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from eventkit.engine import LIF, EventpropNet, ExpWeightedMeanV, FirstSpike, MaxV, MeanV, PerStepV, SumV
from eventkit.plugin.testing import finite_difference_check, random_data, spike_pattern

READOUTS = [SumV(), MeanV(), ExpWeightedMeanV(), MaxV(), FirstSpike(tau0=2.0), PerStepV()]


def make_net(readout, seed, ff_mean=0.5, hidden=(12, 9)):
    return EventpropNet(
        n_in=10,
        n_out=3,
        hidden=list(hidden),
        recurrent=True,
        output=LIF(threshold=0.3) if readout.needs_output_spikes else EventpropNet.__init__.__kwdefaults__["output"],
        readout=readout,
        n_steps=80,
        dtype=torch.float64,
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
            _scaled(out.readout if out.readout.dim() == 2 else out.readout.sum(1)), labels
        )
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
        net = EventpropNet(
            10,
            3,
            hidden=hidden,
            recurrent=rec,
            n_steps=60,
            dtype=torch.float64,
            init=dict(ff_mean=0.7, ff_std=0.2, rec_std=0.1, out_std=0.3),
            generator=torch.Generator().manual_seed(5),
        )
        data = random_data(rng, 2, 10, 60, rate=(40, 70))
        out = net(data)
        assert out.counts[:, -hidden[-1] :].sum() > 5, "the last hidden layer must spike"
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


def _kick_equivalent(net, data, g_counts):
    """``tau_mem * sum over hidden spikes of dL/dC_n * v_n(start of the spike's step)``.

    Holding every spike fixed, the membrane adjoint at the start of a spike's step is exactly
    what the kick ``tau_mem * dL/dC`` sets; this quantity's derivative (by finite differences)
    is therefore the gradient the regulariser's kick must produce."""
    res = net.simulate(data)
    off = net.plan.pop_off
    total = 0.0
    for b in range(len(data)):
        for r in range(res["n_rec"][b]):
            j = int(res["rec_nrn"][b, r])
            if j >= off[-2]:  # output neurons are not counted
                continue
            pop = int(np.searchsorted(off, j, side="right")) - 1
            total += net.plan.tau_mem[pop] * g_counts[j] * res["rec_v"][b, r]
    return total


def test_regulariser_gradient_is_its_defined_kick_above_and_below_the_target():
    """The regulariser's weight gradient equals the finite-difference derivative of
    ``tau_mem * sum_spikes dL/dC * v`` with dL/dC = strength * (C - nu B) for neurons above the
    target and strength_lower * (C - nu B) below it: magnitude, sign and which strength applies
    are all checked (a kick scaled by any factor, flipped, or using the other side's strength
    fails)."""
    from eventkit.engine import spike_count_regularizer

    rng = np.random.default_rng(3)
    data = random_data(rng, 3, 10, 80, rate=(50, 80))
    net = make_net(MeanV(), seed=2, ff_mean=0.5)
    out = net(data)
    counts = out.counts.detach().numpy().sum(0)
    nu = float(np.median(counts)) / len(data) + 0.25
    excess = counts - nu * len(data)
    assert (excess > 0).sum() >= 3 and (excess < 0).sum() >= 3, "neurons on both sides of nu"
    strength, lower = 1e-3, 3e-3
    g_counts = np.where(excess > 0, strength, lower) * excess  # the defined dL/dC, written out
    net.zero_grad()
    spike_count_regularizer(out.counts, strength, nu, strength_lower=lower).backward()
    base = spike_pattern(net, data)
    engine, fd, eps = [], [], 1e-6
    for name in ("ff0", "rec0", "ff1", "rec1"):
        p = getattr(net, name)
        checked = 0
        while checked < 4:
            idx = tuple(int(rng.integers(0, s)) for s in p.shape)
            values = []
            for sign in (1, -1):
                with torch.no_grad():
                    p[idx] += sign * eps
                    same = spike_pattern(net, data) == base
                    values.append(_kick_equivalent(net, data, g_counts))
                    p[idx] -= sign * eps
                if not same:
                    break
            if len(values) < 2 or not same:
                continue
            engine.append(p.grad[idx].item())
            fd.append((values[0] - values[1]) / (2 * eps))
            checked += 1
    engine, fd = np.array(engine), np.array(fd)
    assert np.abs(fd).min() > 0, fd
    np.testing.assert_allclose(engine, fd, rtol=1e-5, atol=1e-9 * np.abs(fd).max())


def test_regulariser_gradient_scales_with_its_strength():
    """The regulariser's contribution to the gradient (total minus cross-entropy alone) is linear
    in its strength: 10x the strength gives exactly 10x the contribution, above and below nu."""
    from eventkit.engine import spike_count_regularizer

    rng = np.random.default_rng(4)
    data = random_data(rng, 3, 10, 80, rate=(50, 80))
    net = make_net(MeanV(), seed=2, ff_mean=0.5)
    labels = torch.as_tensor(data.labels)

    def grads(strength, nu):
        net.zero_grad()
        out = net(data)
        loss = F.cross_entropy(out.readout, labels)
        if strength:
            loss = loss + spike_count_regularizer(out.counts, strength, nu)
        loss.backward()
        return torch.cat([p.grad.flatten() for p in net.parameters()])

    plain = grads(0.0, 0.0)
    for nu in (0.5, 40.0):  # every neuron above, then every neuron below the target
        weak = grads(1e-3, nu) - plain
        strong = grads(1e-2, nu) - plain
        assert weak.abs().max() > 1e-3 * plain.abs().max()
        torch.testing.assert_close(strong, 10 * weak, rtol=1e-6, atol=1e-12)
