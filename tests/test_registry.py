"""The plugin registry: built-ins through hooks, lookups, clear errors, listing."""

import subprocess
import sys
import types

import pytest

from eventkit.base.hookspecs import hookimpl
from eventkit.base.registry import KINDS, RegistryError, create, get_registry


def _plugin(name, **hooks):
    """A temporary plugin object (as a third party would write, but in memory)."""
    mod = types.ModuleType(name)
    for hook, fn in hooks.items():
        setattr(mod, hook, hookimpl(fn))
    return mod


def test_builtins_are_registered_through_the_hooks():
    reg = create(entry_points=False)
    assert {"lif", "li"} <= set(reg.names("neuron"))
    assert {"cross_entropy", "mse"} <= set(reg.names("loss"))
    assert {"adam", "adamw", "sgd"} <= set(reg.names("optimizer"))
    assert {"constant", "warmup_ema_halving", "cosine"} <= set(reg.names("scheduler"))
    assert "cpu" in reg.names("target")
    assert "none" in reg.names("logger")
    assert "yinyang" in reg.names("dataset")
    assert reg.get("optimizer", "adam").provider.startswith("eventkit ")


def test_unknown_name_lists_known_names_and_providers():
    reg = create(entry_points=False)
    with pytest.raises(RegistryError) as err:
        reg.get("optimizer", "adamm")
    msg = str(err.value)
    assert "unknown optimizer 'adamm'" in msg
    for name in ("adam", "adamw", "sgd"):
        assert name in msg
    assert "eventkit.components.optimizers" in msg


def test_duplicate_name_names_both_providers():
    dup = _plugin("my_optim_plugin", register_optimizers=lambda register: register("adam", lambda params: None))
    with pytest.raises(RegistryError) as err:
        create([dup], entry_points=False)
    msg = str(err.value)
    assert "registered twice" in msg and "eventkit.components.optimizers" in msg and "my_optim_plugin" in msg


def test_temporary_plugin_adds_a_component_and_config_dir(tmp_path):
    extra = _plugin(
        "extra_losses",
        register_losses=lambda register: register("hinge", lambda margin=1.0: (lambda r, y: r.sum()), "hinge loss"),
        register_config_dirs=lambda register: register(str(tmp_path)),
    )
    reg = create([extra], entry_points=False)
    entry = reg.get("loss", "hinge")
    assert entry.provider == "extra_losses" and entry.description == "hinge loss"
    assert (str(tmp_path), "extra_losses") in reg.config_dirs
    assert "hinge" in reg.listing()


def test_build_checks_keys_against_the_factory():
    reg = create(entry_points=False)
    with pytest.raises(RegistryError, match="does not accept key.*'tau'.*Accepted keys: tau_mem, tau_syn"):
        reg.build("neuron", {"name": "lif", "tau": 3.0})
    with pytest.raises(RegistryError, match="needs a 'name' key"):
        reg.build("neuron", {"tau_mem": 3.0})
    with pytest.raises(RegistryError, match="lr must be a number > 0"):
        reg.build("optimizer", {"name": "adam", "lr": -1.0}, [])
    lif = reg.build("neuron", {"name": "lif", "tau_mem": 10.0})
    assert lif.tau_mem == 10.0


def test_missing_required_key_is_named():
    needs_size = _plugin("sized", register_datasets=lambda register: register("sized", lambda size, seed=0: None))
    reg = create([needs_size], entry_points=False)
    with pytest.raises(RegistryError, match=r"missing required key\(s\) size.*dataset.size=<value>"):
        reg.build("dataset", {"name": "sized"})


def test_disable_plugins_by_name(monkeypatch):
    monkeypatch.setenv("EVENTKIT_DISABLE_PLUGINS", "eventkit.components.optimizers")
    reg = create(entry_points=False)
    assert reg.names("optimizer") == []
    with pytest.raises(RegistryError, match="Known optimizer names: none"):
        reg.get("optimizer", "adam")


def test_unknown_kind():
    with pytest.raises(RegistryError, match="kinds are"):
        get_registry().get("widget", "x")
    assert set(KINDS) >= {"dataset", "neuron", "readout", "loss", "optimizer", "target", "logger"}


def test_cli_lists_plugins_with_kind_and_provider():
    out = subprocess.run([sys.executable, "-m", "eventkit", "--plugins"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split()[:3] == ["KIND", "NAME", "PROVIDED"]
    assert any(line.split()[:2] == ["optimizer", "adam"] and "eventkit" in line for line in lines)
    assert "Plugins:" in out.stdout


def test_a_plugin_whose_hook_raises_is_reported_not_fatal(capsys):
    def broken(register):
        raise ImportError("needs a library that is not installed")

    reg = create([_plugin("broken_plugin", register_targets=broken)], entry_points=False)
    assert "cpu" in reg.names("target")
    assert "broken_plugin" in capsys.readouterr().err
    assert [p.error is not None for p in reg.plugins if p.name == "broken_plugin"] == [True]
    with pytest.raises(RegistryError, match="failed to load.*broken_plugin.*not installed"):
        reg.get("target", "fpga")
