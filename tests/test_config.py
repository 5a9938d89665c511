"""Config composition (Hydra 1.3) and validation: every bad value names its key and the fix."""

import pytest
from omegaconf import OmegaConf

from eventkit.running.config import ConfigError, compose, conf_dir, validate
from eventkit.base.registry import get_registry

GROUPS = ("dataset", "network", "neuron", "readout", "loss", "optimizer", "scheduler", "target", "logger", "trainer")


def test_default_composition_has_every_group_and_a_seed():
    cfg = compose()
    for group in GROUPS:
        assert group in cfg, group
    assert cfg.seed == 0
    assert cfg.dataset.name == "yinyang" and cfg.neuron.name == "lif" and cfg.target.name == "cpu"
    assert cfg.optimizer.name == "adam" and cfg.optimizer.lr == 1e-2  # the default run's own lr
    assert cfg.logger.name == "none"
    resolved = validate(cfg, get_registry())
    assert resolved.dataset.seed == 0  # dataset seed follows the top-level seed
    assert (conf_dir() / "config.yaml").is_file()


def test_group_files_name_registered_components():
    """Every option in a component group selects a registered name (configs never need _target_)."""
    reg = get_registry()
    for group in ("neuron", "readout", "loss", "optimizer", "scheduler", "target", "logger"):
        for path in (conf_dir() / group).glob("*.yaml"):
            node = OmegaConf.load(path)
            assert node.name in reg.names(group), f"{path} names unknown {group} {node.name!r}"
            assert "_target_" not in node


@pytest.mark.parametrize("spelling", ["experiment", "+experiment"])
def test_experiment_with_and_without_plus(spelling):
    cfg = validate(compose([f"{spelling}=synthetic_kws"]))
    assert cfg.dataset.name == "synthetic_kws" and cfg.network.recurrent is True
    # the experiment overrides the default run's settings (the authors' recipe: Adam 1e-3, warm-up + EMA halving)
    assert cfg.optimizer.lr == 1e-3 and cfg.scheduler.name == "warmup_ema_halving" and cfg.network.hidden == 256
    assert validate(compose([f"{spelling}=synthetic_kws", "optimizer.lr=5e-4"])).optimizer.lr == 5e-4


def test_network_size_switches_regulariser_by_resolver():
    strengths = {}
    for size in (256, 512, 1024):
        cfg = validate(compose(["network=recurrent", f"network.hidden={size}"]))
        assert cfg.network.hidden == size
        strengths[size] = cfg.network.regularizer.strength
    assert strengths == {256: 2.5e-10, 512: 5e-10, 1024: 5e-11}
    with pytest.raises(ConfigError, match="no value for size 300"):
        validate(compose(["network=recurrent", "network.hidden=300"]))


def test_overrides_switch_components():
    cfg = validate(
        compose(["optimizer=sgd", "scheduler=cosine", "loss=mse", "readout=exp_mean_v", "trainer.epochs=7"]),
        get_registry(),
    )
    assert cfg.optimizer.momentum == 0.9 and cfg.scheduler.epochs == 7 and cfg.loss.name == "mse"


@pytest.mark.parametrize(
    "override, key, fix",
    [
        ("neuron.tau_mem=-5", "neuron.tau_mem", "must be > 0"),
        ("dataset.dt=10", "neuron.tau_syn", "shorter than the time step"),
        ("trainer.batch_size=0", "trainer.batch_size", "must be >= 1"),
        ("trainer.batch_size=abc", "trainer.batch_size", "must be an integer"),
        ("trainer.epochs=2.5", "trainer.epochs", "must be an integer"),
        ("trainer.val_fraction=1.5", "trainer.val_fraction", "must be < 1"),
        ("network.hidden=0", "network.hidden", "must be >= 1"),
        ("network.recurrent=maybe", "network.recurrent", "true or false"),
        ("network.init.ff_std=-1", "network.init.ff_std", "must be >= 0"),
        ("trainer.grad_clip=0", "trainer.grad_clip", "must be > 0"),
        ("trainer.resume=/nonexistent/run", "trainer.resume", "not a run directory"),
        ("neuron.name=lfi", "neuron.name", "unknown neuron 'lfi'"),
        ("network.output.name=nope", "network.output", None),
        ("trainer.epochs=???", "trainer.epochs", "required value is missing"),
        ("~trainer.progress", "trainer.progress", "is missing"),
        ("dataset.augment=[{name: twist}]", "dataset.augment[0].name", "unknown augmentation"),
        ("+trainer.epoch=5", "trainer.epoch", "is not a known key of trainer"),
        ("+network.init.ff_sd=1", "network.init.ff_sd", "known: ff_mean"),
        ("trainer.device=gpu", "trainer.device", "must be cpu, cuda or auto"),
    ],
)
def test_bad_values_name_the_key(override, key, fix):
    with pytest.raises(ConfigError) as err:
        validate(compose([override]), get_registry())
    msg = str(err.value)
    assert msg.startswith(key) or key in msg, msg
    if fix:
        assert fix in msg, msg
    assert "Fix" in msg or "Known" in msg or "Pick" in msg, msg


def test_interpolation_error_is_named():
    with pytest.raises(ConfigError, match=r"^optimizer.lr: .*nowhere.lr.*Fix"):
        validate(compose(["optimizer.lr=${nowhere.lr}"]))


def _group_options(group):
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from eventkit.running.config import HYDRA_VERSION_BASE, install_search_path_plugin

    install_search_path_plugin()
    with initialize_config_dir(str(conf_dir()), version_base=HYDRA_VERSION_BASE):
        return GlobalHydra.instance().config_loader().get_group_options(group)


def test_every_experiment_and_target_composes_and_validates():
    """Experiments shipped by the core and by plugins (found through their config dirs)."""
    reg = get_registry()
    experiments = _group_options("experiment")
    assert "synthetic_kws" in experiments
    for name in experiments:
        cfg = validate(compose([f"+experiment={name}"]), reg)
        assert cfg.trainer.epochs >= 1, name
    for target in _group_options("target"):
        validate(compose([f"target={target}"]), reg)


def test_device_cuda_without_a_gpu_is_refused_in_one_line():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(ConfigError) as err:
        validate(compose(["trainer.device=cuda"]), get_registry())
    msg = str(err.value)
    assert msg.startswith("trainer.device=cuda:") and "\n" not in msg, msg
    assert "trainer.device=cpu" in msg and "eventkit[cuda]" in msg, msg
    # auto falls back to the CPU backend
    assert validate(compose(["trainer.device=auto"]), get_registry()).trainer.device == "auto"


def test_missing_values_are_found_in_order_without_resolving_interpolations():
    # catches: a ??? inside a list or a nested group overlooked, or a broken interpolation raised
    # while looking for ??? (resolve then could not name its key)
    from eventkit.running.config import _missing_keys, resolve

    cfg = OmegaConf.create(
        {"a": "???", "b": {"c": "???", "d": None, "e": "${nope}", "f": [1, "???", {"g": "???"}]}, "h": "${b}"}
    )
    assert _missing_keys(cfg) == ["a", "b.c", "b.f.1", "b.f.2.g"]
    with pytest.raises(ConfigError, match=r"^a: required value is missing .*also missing: b.c, b.f.1, b.f.2.g"):
        resolve(cfg)


def test_the_core_uses_only_hydras_and_omegaconfs_public_api():
    # catches: a monkeypatch of hydra._internal or a call of OmegaConf's private node methods
    # coming back (they change without notice between releases)
    import re
    from pathlib import Path

    import eventkit

    private = re.compile(
        r"hydra\._internal|hydra_utils\.|\._(get_node|is_none|is_interpolation|is_missing|get_full_key)\("
    )
    found = [
        f"{path}:{i}: {line.strip()}"
        for path in sorted(Path(eventkit.__file__).parent.rglob("*.py"))
        for i, line in enumerate(path.read_text().splitlines(), 1)
        if private.search(line)
    ]
    assert not found, "\n".join(found)
