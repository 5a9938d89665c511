"""Loihi 2 with learned delays: the target adapts or refuses delay settings before training, the
trained (round-mode) delays become the chip's integer delays, the emulated chip computes what the
float network computes, the report shows them, and the deployed file runs bit-exactly in Lava."""

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from eventkit.plugin import ConfigError, compose
from eventkit.plugin import DatasetSplits
from eventkit.plugin import Delay, EventpropNet, NetworkConfig, adaptable_delays
from eventkit_loihi2.emulator import emulate
from eventkit_loihi2.neuron import LoihiCUBA
from eventkit_loihi2.quantize import FloatNetwork, quantize
from eventkit_loihi2.target import LoihiTarget
from eventkit.plugin.testing import random_data
from test_loihi2_lava import needs_lava


def _adapt(overrides, explicit=()):
    from omegaconf import open_dict

    cfg = compose(overrides)
    with open_dict(cfg):
        notices = LoihiTarget().adapt(cfg, list(explicit), adaptable_delays(cfg.network))
    return cfg, notices


def test_a_recipe_is_adapted_to_the_chip_with_notices():
    cfg, notices = _adapt(["+experiment=ssc_delays", "target=loihi2"])
    ff = cfg.network.delays.ff
    assert ff.mode == "round" and ff.max == 62.0 and list(ff.init.uniform) == [0.0, 50.0]
    assert any("mode: exact -> round" in n for n in notices)
    assert any("max: 1000 -> 62 ms" in n for n in notices)
    cfg, notices = _adapt(["+experiment=timing_delays", "target=loihi2", "dataset.dt=2.0"])
    ff = cfg.network.delays.ff  # the recipe's 150 ms: beyond 62 steps of 2 ms, its range shrinks too
    assert ff.max == 124.0 and list(ff.init.uniform) == [0.0, 124.0] and len(notices) == 3
    assert "network.delays.ff.max: 150 -> 124 ms (62 steps, the chip's longest delay)" in notices
    cfg, notices = _adapt(
        ["+experiment=timing_delays", "target=loihi2", "dataset.dt=2.0", "network.delays.ff.max=110",
         "network.delays.ff.init.uniform=[0,110]"]
    )  # fmt: skip
    assert cfg.network.delays.ff.max == 110.0 and len(notices) == 1  # 55 steps: fits, only the mode
    _, none = _adapt(["target=loihi2"])
    assert none == []


@pytest.mark.parametrize(
    "override, match",
    [
        (
            "network.delays.ff.max=100",
            r"network.delays.ff.max=100 ms: Loihi 2 delays are 0..62 steps .*" r"Fix: network.delays.ff.max=62",
        ),
        ("network.delays.ff.mode=exact", r"network.delays.ff.mode=exact: the chip holds whole-step delays"),
    ],
)
def test_explicit_settings_the_chip_cannot_hold_are_refused(override, match):
    cfg = compose(["+experiment=ssc_delays", "target=loihi2", override])
    with pytest.raises(ValueError, match=match):
        LoihiTarget().adapt(cfg, [override], adaptable_delays(cfg.network))


def test_shd_delays_on_loihi2_stops_at_once_saying_what_to_run(tmp_path):
    from eventkit.plugin import run

    cfg = compose(["+experiment=shd_delays", "target=loihi2"])
    with pytest.raises(ConfigError, match=r"network.delays.rec=null|network.recurrent=false"):
        run(cfg, tmp_path / "run")
    assert not (tmp_path / "run" / "metrics.jsonl").exists()  # nothing trained
    cfg = compose(["+experiment=shd_delays", "target=loihi2", "network.delays.rec=null"])
    with pytest.raises(ValueError, match="recurrent hidden layer 0.*Fix: network.recurrent=false"):
        LoihiTarget().adapt(cfg, [], adaptable_delays(cfg.network))
    cfg = compose(["+experiment=shd_delays", "target=loihi2", "network.delays.rec=null", "network.recurrent=false"])
    with_notices = OmegaConf.to_container(cfg)
    assert (
        LoihiTarget().adapt(cfg, [], adaptable_delays(cfg.network))
        and with_notices["network"]["delays"]["ff"]["max"] == 1000.0
    )


def test_adapt_decides_per_connection_that_an_entry_reaches():
    """The chip's refusals follow the connections a ``network.delays`` entry reaches and their
    kind (``adaptable_delays``), not the entry's spelling: ``ff`` on two layers is
    refused for the recurrent second one only, ``out`` is adapted like any feed-forward
    connection, and an entry that reaches no connection (``rec`` in a network without
    recurrence) is left to the network's own check, which names it -- it is not a recurrent
    delay the chip cannot run."""
    two = ["+experiment=timing_delays", "target=loihi2", "network.layers=2", "network.hidden=[8,8]"]
    with pytest.raises(ValueError, match=r"network.delays.ff: delays into the recurrent hidden layer 1 "):
        _adapt([*two, "network.recurrent=[false,true]"])
    cfg, notices = _adapt([*two, "network.recurrent=false", "+network.delays.out={max: 100}"])
    assert cfg.network.delays.out.max == 62.0 and cfg.network.delays.out.mode == "round"
    assert "network.delays.out.max: 100 -> 62 ms (62 steps, the chip's longest delay)" in notices
    cfg, notices = _adapt([*two, "network.recurrent=false", "+network.delays.rec={max: 5}"])
    assert not any("delays.rec" in n for n in notices) and cfg.network.delays.rec.max == 5
    with pytest.raises(ValueError, match=r"network.delays.rec: this network has no rec connection"):
        EventpropNet(4, 2, hidden=[8, 8], recurrent=[False, False], delays=NetworkConfig.of(cfg.network).parsed_delays)


def _delay_net(seed=0, n_steps=60, max_steps=8.0, delays=True, rec_delays=False):
    """Two hidden layers (the first recurrent), delays on ff1 and out (``delays=False``: the
    same weights without delays; ``rec_delays``: rec0 gets delays of 1 ms too)."""
    spec = {
        "ff1": Delay(max=max_steps, init=(0.0, max_steps), mode="round"),
        "out": Delay(max=max_steps, init=(0.0, max_steps), mode="round"),
    }
    net = EventpropNet(
        10,
        3,
        hidden=[12, 9],
        recurrent=[True, False],
        neuron=LoihiCUBA(),
        output=LoihiCUBA(spiking=False),
        n_steps=n_steps,
        delays=spec,
        init=dict(ff_mean=0.6, ff_std=0.3, rec_std=0.2, out_std=0.3),
        generator=torch.Generator().manual_seed(seed),
    )
    if not (delays or rec_delays):
        return _with_delays(net, {}, n_steps)
    if rec_delays:
        return _with_delays(net, {**spec, "rec0": Delay(max=max_steps, init=(1.0, 1.0), mode="round")}, n_steps)
    return net


def _with_delays(net, delays, n_steps):
    """A network with ``net``'s weights (and the delays it has on connections in ``delays``)."""
    other = EventpropNet(
        10,
        3,
        hidden=[12, 9],
        recurrent=[True, False],
        neuron=LoihiCUBA(),
        output=LoihiCUBA(spiking=False),
        n_steps=n_steps,
        delays=delays,
    )
    state = {k: v for k, v in net.state_dict().items() if k in other.state_dict()}
    other.load_state_dict(state, strict=False)
    return other


def test_export_turns_trained_delays_into_the_chips_integer_steps():
    net = _delay_net()
    with torch.no_grad():
        net.ff1_delay[0, 0], net.ff1_delay[0, 1] = 2.4, 2.6  # round mode: 2 and 3 steps
    chip, _ = quantize(FloatNetwork.of(net))
    d = chip.layers[1].delay
    assert d.dtype == np.int32 and d.shape == (9, 12) and d[0, 0] == 2 and d[0, 1] == 3
    np.testing.assert_array_equal(d, np.rint(net.ff1_delay.detach().numpy()))
    np.testing.assert_array_equal(chip.layers[2].delay, np.rint(net.out_delay.detach().numpy()))
    assert chip.layers[0].delay is None  # ff0 has no delays
    bad = FloatNetwork.of(net)
    bad.delays["ff1"] += 60.0  # beyond 62 steps
    with pytest.raises(ValueError, match="delays must be integers in 0..62 steps"):
        quantize(bad)
    bad.delays["ff1"][:] = -1.0
    with pytest.raises(ValueError, match="0..62"):
        quantize(bad)
    rec = FloatNetwork.of(_delay_net(rec_delays=True))
    with pytest.raises(ValueError, match="recurrent connection's delays cannot be exported"):
        quantize(rec)


def test_the_chips_longest_delay_of_62_steps_is_accepted_and_63_refused():
    """62 steps is the chip's longest delay: accepted exactly, everywhere a delay is checked
    (the recipe's adaptation, the built network's check, the export), and one step more refused."""
    cfg, notices = _adapt(
        ["+experiment=ssc_delays", "target=loihi2", "network.delays.ff.max=62"], ["network.delays.ff.max=62"]
    )
    assert cfg.network.delays.ff.max == 62.0 and not any(".max:" in n for n in notices)
    data = random_data(np.random.default_rng(0), 4, 10, 80, rate=(40, 70)).binary()
    LoihiTarget().check(_delay_net(n_steps=80, max_steps=62.0), data)
    with pytest.raises(ValueError, match=r"network.delays.ff1.max: Loihi 2 delays are 0..62 steps"):
        LoihiTarget().check(_delay_net(n_steps=80, max_steps=63.0), data)
    export = FloatNetwork.of(_delay_net(n_steps=80, max_steps=62.0))
    export.delays["ff1"][:] = 62.0
    export.delays["ff1"][0, 0] = 0.0
    chip, _ = quantize(export)
    assert chip.layers[1].delay.max() == 62 and chip.layers[1].delay.min() == 0
    export.delays["ff1"][0, 0] = 63.0
    with pytest.raises(ValueError, match=r"delays must be integers in 0..62 steps \(found 62..63\)"):
        quantize(export)


def test_emulated_chip_spikes_like_the_float_network_with_delays():
    """On binary input the emulated chip's hidden spike counts equal the float (round-mode,
    loihi_cuba) network's up to the chip's integer rounding, with delays on a hidden and the
    output connection; with the delays ignored they do not."""
    rng = np.random.default_rng(0)
    data = random_data(rng, 16, 10, 60, rate=(40, 70)).binary()
    net = _delay_net()
    target = LoihiTarget(qat=True)
    target.prepare(net)
    with torch.no_grad():
        out = net(data)
    float_counts = out.counts.numpy()
    export = FloatNetwork.of(net)
    chip, _, emu, _ = target.silent_readout_chip(export, data, "exp_sum")
    total = float_counts.sum()
    assert total > 200
    assert abs(emu.counts.sum() - total) <= 0.01 * total
    layer2 = float_counts[:, 12:].sum()
    assert abs(emu.counts[:, 12:].sum() - layer2) <= 0.02 * layer2
    undelayed = emulate(quantize(FloatNetwork.of(_delay_net(delays=False)))[0], data, offset=1)
    assert abs(undelayed.counts[:, 12:].sum() - layer2) > 0.05 * layer2


@needs_lava
def test_a_trained_delay_network_deploys_and_runs_bit_exactly_in_lava(tmp_path):
    rng = np.random.default_rng(5)
    data = random_data(rng, 12, 10, 60, rate=(40, 70))
    net = _delay_net(seed=3)
    target = LoihiTarget(lava="required", samples=6)
    target.prepare(net)
    fields = target.deploy(net, DatasetSplits(train=data, test=data), tmp_path)
    assert fields["lava"]["status"] == "checked" and fields["lava"]["bit_exact"] is True
    assert fields["lava"]["samples_checked"] == 6
    assert [d["layer"] for d in fields["delays"]] == ["hidden1", "output"]
    assert fields["delay_buffer_bytes"] > 0
    report = (tmp_path / "deploy" / "loihi2" / "report.md").read_text()
    assert "## Delays" in report and "bit-exact" in report
    assert (tmp_path / "plots" / "loihi2_delays.png").is_file()
    import h5py

    with h5py.File(tmp_path / "deploy" / "loihi2" / "model.net") as f:
        assert "delay" in f["layer/2"] and "delay" in f["layer/3"] and "delay" not in f["layer/1"]
        np.testing.assert_array_equal(f["layer/2/delay"][()], np.rint(net.ff1_delay.detach().numpy()))


def test_reading_a_netx_file_with_delays_the_chip_cannot_hold_fails_clearly(tmp_path):
    import h5py

    from eventkit_loihi2.netx import read_netx, write_netx

    chip, _ = quantize(FloatNetwork.of(_delay_net()))
    path = tmp_path / "model.net"
    write_netx(chip, path)
    back = read_netx(path)
    np.testing.assert_array_equal(back.layers[1].delay, chip.layers[1].delay)
    for bad, match in ((63, "0..62"), (-1, "0..62"), (2.5, "integers")):
        with h5py.File(path, "r+") as f:
            d = f["layer/2/delay"][()].astype(np.float64)
            d[0, 0] = bad
            del f["layer/2/delay"]
            f["layer/2/delay"] = d
        with pytest.raises(ValueError, match=match):
            read_netx(path)


def test_chip_in_the_loop_training_works_with_delays():
    import torch.nn.functional as F

    rng = np.random.default_rng(2)
    data = random_data(rng, 24, 10, 60, rate=(40, 70))
    labels = torch.as_tensor(data.labels)
    net = EventpropNet(
        10,
        3,
        hidden=12,
        recurrent=False,
        neuron=LoihiCUBA(),
        output=LoihiCUBA(spiking=False),
        n_steps=60,
        delays={"ff": Delay(max=6.0, init=(0.0, 6.0), mode="round")},
        init=dict(ff_mean=0.6, ff_std=0.3, out_std=0.3),
        generator=torch.Generator().manual_seed(0),
    )
    LoihiTarget(qat=True, in_the_loop=True).prepare(net)
    opt = torch.optim.Adam(net.param_groups(delay_lr=0.5), lr=1e-2)
    before = net.ff0_delay.detach().clone()
    losses = []
    for _ in range(12):
        opt.zero_grad()
        loss = F.cross_entropy(net(data).readout, labels)  # the emulated chip's readout
        loss.backward()
        opt.step()
        net.clamp_delays()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.02
    assert not torch.equal(torch.round(before), torch.round(net.ff0_delay.detach()))
