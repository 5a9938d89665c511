"""Quantisation-aware training for the loihi2 target: the forward pass computes with the chip's
weights and thresholds, the updates go to the float weights."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from eventkit.plugin import EventpropNet
from eventkit_loihi2.neuron import LoihiCUBA
from eventkit_loihi2.quantize import FloatNetwork, chip_parameters
from eventkit_loihi2.target import READOUT_ON_CHIP, LoihiTarget
from eventkit.plugin.testing import random_data


def _net():
    return EventpropNet(
        10,
        3,
        hidden=12,
        recurrent=True,
        neuron=LoihiCUBA(),
        output=LoihiCUBA(spiking=False),
        n_steps=60,
        init=dict(ff_mean=0.6, ff_std=0.3, rec_std=0.2, out_std=0.3),
        generator=torch.Generator().manual_seed(0),
    )


def test_qat_forward_uses_chip_weights_and_thresholds():
    net = _net()
    LoihiTarget(qat=True).prepare(net)
    weights, _, thresholds = net.effective_parameters()
    params = chip_parameters(FloatNetwork.of(net))
    for name, pop in (("ff0", 0), ("rec0", 0), ("out", 1)):
        q = weights[name] * 2.0 ** params[pop]["weight_exp"]
        np.testing.assert_array_equal(q, np.round(q))
        assert q.min() >= -128 and q.max() <= 127
    assert thresholds == {0: params[0]["threshold_chip"]}
    assert not np.array_equal(weights["ff0"], net.ff0.detach().numpy())


def test_qat_trains_the_float_weights():
    rng = np.random.default_rng(0)
    data = random_data(rng, 16, 10, 60, rate=(60, 90))
    net = _net()
    LoihiTarget(qat=True).prepare(net)
    before = net.ff0.detach().clone()
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    losses = []
    for _ in range(15):
        opt.zero_grad()
        loss = F.cross_entropy(net(data).readout, torch.as_tensor(data.labels))
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    assert not torch.equal(before, net.ff0.detach())


def test_qat_off_changes_nothing():
    net = _net()
    LoihiTarget(qat=False).prepare(net)
    weights, _, thresholds = net.effective_parameters()
    assert thresholds == {} and np.array_equal(weights["ff0"], net.ff0.detach().numpy())


def test_target_selects_the_chip_neurons_and_the_user_can_override():
    from eventkit.plugin import compose

    cfg = compose(["target=loihi2"])
    assert cfg.neuron.name == "loihi_cuba" and cfg.network.output.name == "loihi_li"
    assert cfg.target.qat is False
    cfg = compose(["target=loihi2", "neuron=lif", "network.output.name=li", "target.qat=true"])
    assert cfg.neuron.name == "lif" and cfg.network.output.name == "li" and cfg.target.qat is True


def _data_with_repeats(n=16, seed=0):
    """Random input in which some (step, channel) pairs repeat: the chip sees each once."""
    data = random_data(np.random.default_rng(seed), n, 10, 60, rate=(40, 70))
    assert data.binary().n_spikes < data.n_spikes
    return data


def test_target_makes_the_network_see_binary_input():
    net = _net()
    assert not net.simulation.binary_input
    LoihiTarget().prepare(net)
    assert net.simulation.binary_input


@pytest.mark.parametrize("readout", ["exp_mean_v", "sum_v", "mean_v", "max_v"])
def test_in_the_loop_readout_is_the_emulated_chip_in_float_units(readout):
    from eventkit.plugin import READOUTS

    data = _data_with_repeats()
    net = EventpropNet(
        10,
        3,
        hidden=12,
        recurrent=True,
        neuron=LoihiCUBA(),
        output=LoihiCUBA(spiking=False),
        n_steps=60,
        readout=READOUTS[readout](),
        init=dict(ff_mean=0.6, ff_std=0.3, rec_std=0.2, out_std=0.3),
        generator=torch.Generator().manual_seed(0),
    )
    target = LoihiTarget(qat=True, in_the_loop=True)
    target.prepare(net)
    assert net.simulation.readout_in_the_loop is not None
    with net.simulating(readout_in_the_loop=None), torch.no_grad():
        own = net(data).readout.numpy()  # the float network with the chip's weights
        spikes = net(data).counts.sum().item()
    chip = net(data).readout.detach().numpy()  # the emulated chip, converted
    ex = FloatNetwork.of(net)
    _, _, emu, _ = target.silent_readout_chip(ex, data, READOUT_ON_CHIP[readout])
    # the same hidden spikes up to the chip's integer rounding (counting the input's repeated
    # (step, channel) spikes as the float default does would add ~7 %)
    assert abs(emu.counts[:, :12].sum() - spikes) <= 0.002 * spikes
    # same values up to the chip's integer rounding (not a scale factor away)
    assert np.abs(chip - own).max() <= 0.01 * np.abs(own).max()
    assert not np.array_equal(chip, own)


def test_in_the_loop_training_lowers_the_chip_loss():
    data = _data_with_repeats(24, seed=1)
    labels = torch.as_tensor(data.labels)
    net = _net()
    LoihiTarget(qat=True, in_the_loop=True).prepare(net)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    losses = []
    for _ in range(15):
        opt.zero_grad()
        loss = F.cross_entropy(net(data).readout, labels)  # loss of the emulated chip's readout
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.02


def test_in_the_loop_needs_qat_and_a_voltage_readout():
    from eventkit.plugin import READOUTS

    with pytest.raises(ValueError, match="qat=true"):
        LoihiTarget(qat=False, in_the_loop=True)
    with pytest.raises(ValueError, match="in_the_loop must be true or false"):
        LoihiTarget(qat=True, in_the_loop="yes")
    net = EventpropNet(
        10,
        3,
        hidden=12,
        neuron=LoihiCUBA(),
        output=LoihiCUBA(spiking=False),
        n_steps=60,
        readout=READOUTS["per_step"](),
    )
    with pytest.raises(ValueError, match="per_step"):
        LoihiTarget(qat=True, in_the_loop=True).prepare(net)
