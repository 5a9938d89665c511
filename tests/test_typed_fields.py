"""Meaning carried by types, not by strings or optional attributes: the Target base class and its
default hooks, the delays of a configured network per connection, the optimizer group that lr
schedules leave alone, the metrics keys of the delay statistics."""

import types

import pytest
import torch
from omegaconf import open_dict

from eventkit.base.errors import ConfigError
from eventkit.base.hookspecs import hookimpl
from eventkit.base.registry import create
from eventkit.components.networks import ConnectionDelay, NetworkConfig, adaptable_delays
from eventkit.components.schedules import WarmupEmaHalving
from eventkit.components.targets import CpuTarget, Target, as_target
from eventkit.engine import Delay, EventpropNet
from eventkit.engine.network import ParamGroup, scheduled
from eventkit.rundir.layout import DelayMetricKeys
from eventkit.running.pipeline import adapted_config
from eventkit.running.config import compose
from eventkit.training.loop import delay_stats


def _network(**changes) -> NetworkConfig:
    cfg = compose(["network.hidden=[5,4]", "network.layers=2", "network.recurrent=[false,true]"])
    with open_dict(cfg):
        for key, value in changes.items():
            cfg.network[key] = value
    return NetworkConfig.of(cfg.network)


def test_a_configured_networks_delays_are_known_per_connection_with_their_kind():
    """``network.delays.ff`` reaches every feed-forward connection, a connection's own entry wins
    over its kind's, ``rec`` reaches the recurrent layer it exists in; each entry knows the layer
    it feeds and the config key that set it."""
    ff = {"max": 5.0}
    net = _network(delays={"ff": ff, "ff1": {"max": 3.0, "mode": "round"}, "rec": {"max": 2.0}, "out": {"max": 1.0}})
    got = net.connection_delays
    assert list(got) == ["ff0", "ff1", "rec1", "out"]  # the network's connection order
    assert got["ff0"] == ConnectionDelay("ff0", "ff", 0, "ff", Delay(max=5.0), into_recurrent=False)
    assert got["ff1"] == ConnectionDelay("ff1", "ff", 1, "ff1", Delay(max=3.0, mode="round"), into_recurrent=True)
    assert got["rec1"] == ConnectionDelay("rec1", "rec", 1, "rec", Delay(max=2.0), into_recurrent=True)
    assert got["out"] == ConnectionDelay("out", "out", 2, "out", Delay(max=1.0))
    assert _network().connection_delays == {}
    # the engine builds the same connections with the same delays
    built = EventpropNet(3, 2, hidden=[5, 4], recurrent=[False, True], n_steps=10, delays=net.parsed_delays)
    assert {c.name: (c.kind, c.post.index, c.delay) for c in built.topology.delayed} == {
        name: (d.kind, d.post, d.delay) for name, d in got.items()
    }


def test_a_target_adapts_the_delays_as_written_when_the_network_section_does_not_validate():
    """Validation refuses an init range beyond max; the target still sees that entry (typed, as
    written), so its own problems come in the same message."""
    cfg = compose(["network.delays.ff={max: 100, init: [0, 110]}"])
    with pytest.raises(ConfigError):
        NetworkConfig.of(cfg.network)
    written = adaptable_delays(cfg.network)
    assert written == {"ff0": ConnectionDelay("ff0", "ff", 0, "ff", Delay(max=100.0, init=(0.0, 110.0)), False)}


class _Minimal(Target):
    name = "minimal"

    def check(self, net, data):
        pass

    def deploy(self, net, splits, run_dir):
        return {}


def test_a_target_that_overrides_neither_adapt_nor_prepare_changes_nothing():
    cfg = compose([])
    before = dict(cfg.network)
    target = _Minimal()
    assert target.adapt(cfg, [], adaptable_delays(cfg.network)) == []
    assert dict(cfg.network) == before
    net = EventpropNet(3, 2, hidden=[4], recurrent=[False], n_steps=10)
    sim = net.simulation
    target.prepare(net)
    assert net.simulation is sim
    assert as_target(CpuTarget(), "cpu").name == "cpu"


def test_a_target_factory_returning_no_target_is_refused_with_the_fix():
    """A target is a Target subclass: an object that merely has a ``deploy`` is refused before
    anything runs, with one line saying what to derive from (its hooks are not guessed)."""

    class Duck:
        name = "duck"

        def check(self, net, data):
            pass

        def deploy(self, net, splits, run_dir):
            return {}

    def register_targets(register):
        register("duck", Duck, "not derived from Target")

    plugin = types.ModuleType("duck_plugin")
    plugin.register_targets = hookimpl(register_targets)
    registry = create([plugin], entry_points=False)
    cfg = compose([])
    with open_dict(cfg):
        cfg.target = {"name": "duck"}
    with pytest.raises(ConfigError, match=r"target=duck: its factory returned a Duck.*derive the target class from"):
        adapted_config(cfg, [], registry)


def test_only_the_delay_group_keeps_its_learning_rate_under_a_schedule():
    net = EventpropNet(3, 2, hidden=[4], recurrent=[False], n_steps=10, delays={"ff": Delay(max=2.0)})
    weights, delays = net.param_groups(delay_lr=0.5)
    assert delays == ParamGroup(params=net.delay_parameters(), lr=0.5, fixed_lr=True)
    assert scheduled(weights) and not scheduled(delays)
    opt = torch.optim.Adam([weights, delays], lr=1e-3)
    WarmupEmaHalving(opt).step_batch()
    assert opt.param_groups[0]["lr"] == pytest.approx(1.05e-6) and opt.param_groups[1]["lr"] == 0.5


def test_the_delay_statistics_are_written_and_read_under_one_set_of_keys():
    net = EventpropNet(3, 2, hidden=[4], recurrent=[True], n_steps=10, delays={"ff": Delay(max=2.0, init=(0.0, 2.0))})
    conn = net.topology.connection("ff0")
    keys = DelayMetricKeys.of(conn)
    assert keys == DelayMetricKeys("ff0_delay_mean_ms", "ff0_delay_std_ms")
    stats = delay_stats(net)
    assert set(stats) == {keys.mean, keys.std}
    assert stats[keys.mean] == pytest.approx(float(net.ff0_delay.detach().double().mean()))
