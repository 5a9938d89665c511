"""``loihi_cuba`` with grid timing: the loss is piecewise constant in the weights that feed a
hidden layer (finite differences are exactly 0), while the engine returns a nonzero
straight-through gradient for them; the output weights' gradient stays exact (docs/engine.md,
section "What is exact")."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from eventkit.plugin import EventpropNet, ExpWeightedMeanV
from eventkit.plugin.testing import random_data, spike_pattern
from eventkit_loihi2.neuron import LoihiCUBA


def test_loihi_cuba_grid_timing_passes_hidden_gradients_straight_through():
    """Grid timing: a hidden spike acts at the end of its step, so the loss depends on the
    hidden-layer weights only through which step each spike falls in: finite differences are
    exactly 0 and the loss is a step function of such a weight. The engine's gradient for them
    is nonzero (the interpolated crossing's sensitivity, straight through); for the output
    weights, on which the loss depends smoothly, it is exact."""
    rng = np.random.default_rng(5)
    data = random_data(rng, 3, 10, 60, rate=(50, 80))
    labels = torch.as_tensor(data.labels)
    net = EventpropNet(
        10,
        3,
        hidden=12,
        recurrent=True,
        neuron=LoihiCUBA(timing="grid"),
        output=LoihiCUBA(spiking=False),
        readout=ExpWeightedMeanV(),
        n_steps=60,
        dtype=torch.float64,
        init=dict(ff_mean=0.6, ff_std=0.2, rec_std=0.2, out_std=0.3),
        generator=torch.Generator().manual_seed(0),
    )

    def loss():
        return F.cross_entropy(net(data).readout * 20.0, labels)

    net.zero_grad()
    loss().backward()
    assert net(data).counts.sum() > 50
    base_pattern = spike_pattern(net, data)
    eps = 1e-6
    for name in ("ff0", "rec0", "out"):
        param = getattr(net, name)
        engine, fd = [], []
        for idx in [tuple(int(rng.integers(0, s)) for s in param.shape) for _ in range(6)]:
            values = []
            with torch.no_grad():
                for sign in (1, -1):
                    param[idx] += sign * eps
                    assert spike_pattern(net, data) == base_pattern
                    values.append(loss().item())
                    param[idx] -= sign * eps
            engine.append(param.grad[idx].item())
            fd.append((values[0] - values[1]) / (2 * eps))
        engine, fd = np.array(engine), np.array(fd)
        if name == "out":
            assert np.abs(fd).max() > 0
            np.testing.assert_allclose(engine, fd, rtol=1e-4, atol=1e-7 * np.abs(fd).max())
        else:
            assert np.all(fd == 0.0), (name, fd)
            assert np.linalg.norm(engine) > 1e-3, (name, engine)
    # a wider sweep of one hidden input weight: a step function with a few levels
    with torch.no_grad():
        w0 = net.ff0[0, 0].item()
        levels = []
        for w in np.linspace(w0 - 0.3, w0 + 0.3, 61):
            net.ff0[0, 0] = w
            levels.append(loss().item())
        net.ff0[0, 0] = w0
    assert 1 < len(set(levels)) <= 20, sorted(set(levels))
