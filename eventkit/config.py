"""The composed config: where it lives, how to compose it in code, and its validation.

Validation happens once, right after composition and before anything expensive, so a typo or an
impossible value costs a second, not a training run. Every error names the config key, what was
wrong and how to fix it (as a command-line override).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable, Sequence

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError, MissingMandatoryValue, OmegaConfBaseException

HYDRA_VERSION_BASE = "1.3"
CONFIG_NAME = "config"


class ConfigError(ValueError):
    """The composed config is invalid; the message names the key and the fix."""


# ----------------------------------------------------------------------------- resolvers
def _by_size(size: Any, table: Any) -> Any:
    """``${eventkit.by_size:${network.hidden},{256: 2.5e-10, 512: 5e-10}}`` -> the value for
    this size: lets one experiment file carry per-size hyper-parameters (as the authors' tables do)."""
    table = OmegaConf.to_container(table) if isinstance(table, (DictConfig, ListConfig)) else table
    if not isinstance(table, dict):
        raise ConfigError(f"eventkit.by_size: second argument must be a mapping size -> value, got {table!r}")
    key = size[0] if isinstance(size, (list, tuple, ListConfig)) and len(size) else size
    for k, v in table.items():
        if str(k) == str(key):
            return v
    raise ConfigError(f"eventkit.by_size: no value for size {key!r}; the table has sizes "
                      f"{', '.join(map(str, table))}. Add an entry or choose one of those sizes.")


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _on_rank_zero(value: Any, other: Any = None) -> Any:
    """``${eventkit.on_rank_zero:VALUE}``: VALUE in a single process and in rank 0 of a
    multi-process launch, None (or the second argument) in the other processes (so that
    ``hydra.output_subdir`` is written by rank 0 alone; see eventkit.distributed)."""
    from eventkit.distributed import launch_rank

    return value if launch_rank() == 0 else other


def register_resolvers() -> None:
    """Register eventkit's OmegaConf resolvers (idempotent)."""
    for name, fn in (("eventkit.by_size", _by_size), ("eventkit.cores", _cores),
                     ("eventkit.on_rank_zero", _on_rank_zero)):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)


register_resolvers()


# ------------------------------------------------------------------------- finding configs
def conf_dir() -> Path:
    """The primary config directory: ``eventkit/conf`` inside an installed wheel, the repository's
    ``conf/`` in a checkout or editable install."""
    pkg = Path(__file__).resolve().parent
    for candidate in (pkg / "conf", pkg.parent / "conf"):
        if (candidate / f"{CONFIG_NAME}.yaml").is_file():
            return candidate
    raise FileNotFoundError(f"eventkit's config directory was not found next to {pkg}; reinstall eventkit")


#: groups that conf/config.yaml lists as ``group: null`` so that ``group=x`` works; Hydra 1.3
#: rejects ``+group=x`` for them ("Multiple values"), so both spellings are accepted by
#: rewriting the ``+`` form (as the docs and ARCHITECTURE write ``+experiment=...``).
OPTIONAL_GROUPS = ("experiment", "hparams_search")


def normalize_overrides(overrides: Sequence[str]) -> list[str]:
    """``+experiment=x`` -> ``experiment=x`` (see :data:`OPTIONAL_GROUPS`)."""
    out = []
    for o in overrides:
        for group in OPTIONAL_GROUPS:
            if o.startswith(f"+{group}="):
                o = o[1:]
        out.append(o)
    return out


def compose(overrides: Sequence[str] = (), *, return_hydra_config: bool = False) -> DictConfig:
    """Compose the config as ``python -m eventkit <overrides>`` would (for tests and notebooks).
    Uses Hydra's global state inside a context, so it can be called repeatedly."""
    from hydra import compose as _compose
    from hydra import initialize_config_dir

    install_search_path_plugin()
    with initialize_config_dir(str(conf_dir()), version_base=HYDRA_VERSION_BASE, job_name="eventkit"):
        return _compose(CONFIG_NAME, overrides=normalize_overrides(overrides),
                        return_hydra_config=return_hydra_config)


# ------------------------------------------------------------------------------ validation
def _fail(key: str, problem: str, fix: str) -> None:
    raise ConfigError(f"{key}: {problem}. Fix: {fix}")


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _num(cfg: DictConfig, key: str, *, gt: float | None = None, ge: float | None = None,
         lt: float | None = None, example: Any = None) -> float:
    value = OmegaConf.select(cfg, key, throw_on_missing=True)
    fix = f"{key}={example if example is not None else '<number>'}"
    if not _is_num(value):
        _fail(key, f"must be a number, got {value!r} ({type(value).__name__})", fix)
    if gt is not None and not value > gt:
        _fail(key, f"must be > {gt}, got {value}", fix)
    if ge is not None and not value >= ge:
        _fail(key, f"must be >= {ge}, got {value}", fix)
    if lt is not None and not value < lt:
        _fail(key, f"must be < {lt}, got {value}", fix)
    return value


def _int(cfg: DictConfig, key: str, *, ge: int, example: int, allow_none: bool = False) -> int | None:
    value = OmegaConf.select(cfg, key, throw_on_missing=True)
    if value is None and allow_none:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        _fail(key, f"must be an integer{' or null' if allow_none else ''}, got {value!r} ({type(value).__name__})",
              f"{key}={example}")
    if value < ge:
        _fail(key, f"must be >= {ge}, got {value}", f"{key}={example}")
    return value


def _bool(cfg: DictConfig, key: str) -> bool:
    value = OmegaConf.select(cfg, key, throw_on_missing=True)
    if not isinstance(value, bool):
        _fail(key, f"must be true or false, got {value!r}", f"{key}=true")
    return value


def _section(cfg: DictConfig, key: str, required: Iterable[str] = ()) -> DictConfig:
    node = OmegaConf.select(cfg, key, throw_on_missing=True)
    if not isinstance(node, DictConfig):
        _fail(key, f"must be a config group (a mapping), got {node!r}", f"choose one with {key}=<option>")
    for sub in required:
        if sub not in node:
            _fail(f"{key}.{sub}", "is missing", f"add it to the {key} config or pass +{key}.{sub}=<value>")
    return node


def _missing_keys(cfg: DictConfig, prefix: str = "") -> list[str]:
    out = []
    for key in cfg.keys() if isinstance(cfg, DictConfig) else range(len(cfg)):
        full = f"{prefix}.{key}" if prefix else str(key)
        if OmegaConf.is_missing(cfg, key):
            out.append(full)
            continue
        child = cfg._get_node(key)
        if isinstance(child, (DictConfig, ListConfig)) and not child._is_none() and not child._is_interpolation():
            out += _missing_keys(child, full)
    return out


def resolve(cfg: DictConfig) -> DictConfig:
    """Resolve every interpolation, turning OmegaConf errors into ConfigErrors that name the key."""
    missing = _missing_keys(cfg)
    if missing:
        key = missing[0]
        raise ConfigError(f"{key}: required value is missing (???). Fix: pass {key}=<value> on the command line"
                          + (f" (also missing: {', '.join(missing[1:])})" if len(missing) > 1 else ""))
    try:
        resolved = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    except ConfigError:
        raise
    except MissingMandatoryValue as exc:
        raise ConfigError(f"{exc.full_key}: required value is missing. Fix: pass {exc.full_key}=<value>") from None
    except InterpolationResolutionError as exc:
        raise ConfigError(f"{exc.full_key}: {str(exc.msg).splitlines()[0]}. Fix: correct the interpolation "
                          f"in that key (e.g. {exc.full_key}=<value>)") from None
    except OmegaConfBaseException as exc:
        raise ConfigError(f"{getattr(exc, 'full_key', '?')}: {str(exc).splitlines()[0]}") from None
    return resolved


TRAINER_KEYS = ("epochs", "batch_size", "eval_batch_size", "val_fraction", "grad_clip", "silent_fix", "threads",
                "resume", "progress", "patience", "distributed")
NETWORK_KEYS = ("hidden", "layers", "recurrent", "init", "output", "regularizer", "delays", "delay_lr")
INIT_KEYS = ("ff_mean", "ff_std", "rec_mean", "rec_std", "out_mean", "out_std")

GROUPS = ("dataset", "network", "neuron", "readout", "loss", "optimizer", "scheduler", "target", "logger", "trainer")
NAMED_GROUPS = ("dataset", "neuron", "readout", "loss", "optimizer", "scheduler", "target", "logger")


def validate(cfg: DictConfig, registry: Any | None = None) -> DictConfig:
    """Check a composed config and return it resolved. ``registry`` (optional) checks that
    every ``name`` is a registered component. Raises ConfigError naming the key and the fix."""
    cfg = resolve(cfg)
    for group in GROUPS:
        if group not in cfg or cfg[group] is None:
            _fail(group, "config group is missing", f"choose one with {group}=<option> (see --help)")
    for group in NAMED_GROUPS:
        node = _section(cfg, group, ["name"])
        if not isinstance(node.name, str):
            _fail(f"{group}.name", f"must be a component name (string), got {node.name!r}",
                  f"{group}=<option> or {group}.name=<registered name>")
        if registry is not None:
            from eventkit.registry import RegistryError

            try:
                registry.get(group, node.name)
            except RegistryError as exc:
                raise ConfigError(f"{group}.name: {exc}") from None
    _int(cfg, "seed", ge=0, example=0)

    # dataset
    _section(cfg, "dataset", ["dt"])
    dt = _num(cfg, "dataset.dt", gt=0, example=1.0)
    augment = cfg.dataset.get("augment", [])
    if augment is None:
        augment = []
    if not isinstance(augment, ListConfig):
        _fail("dataset.augment", f"must be a list of {{name: ...}} entries, got {augment!r}", "dataset.augment=[]")
    for i, aug in enumerate(augment):
        if not isinstance(aug, DictConfig) or not isinstance(aug.get("name"), str):
            _fail(f"dataset.augment[{i}]", f"must be a mapping with a 'name' key, got {aug!r}",
                  "write it as {name: <augmentation>, ...}")
        if registry is not None:
            from eventkit.registry import RegistryError

            try:
                registry.get("augmentation", aug.name)
            except RegistryError as exc:
                raise ConfigError(f"dataset.augment[{i}].name: {exc}") from None

    # neurons: time constants positive and not shorter than the time step
    for key in ("neuron", "network.output"):
        node = _section(cfg, key, ["name"])
        for tau in ("tau_mem", "tau_syn"):
            if tau in node and node[tau] is not None:
                value = _num(cfg, f"{key}.{tau}", gt=0, example=20.0)
                if value < dt:
                    _fail(f"{key}.{tau}", f"time constant {value} ms is shorter than the time step "
                          f"dataset.dt={dt} ms, which the exponential integration cannot resolve",
                          f"raise {key}.{tau} or lower dataset.dt (e.g. dataset.dt={value / 2:g})")
        if registry is not None and key == "network.output":
            from eventkit.registry import RegistryError

            try:
                registry.get("neuron", node.name)
            except RegistryError as exc:
                raise ConfigError(f"network.output.name: {exc}") from None
        if "threshold" in node and node.threshold is not None:
            _num(cfg, f"{key}.threshold", gt=0, example=1.0)

    # network
    _section(cfg, "network", ["hidden", "layers", "recurrent", "init", "output", "regularizer"])
    hidden = OmegaConf.select(cfg, "network.hidden")
    if isinstance(hidden, ListConfig):
        for i, h in enumerate(hidden):
            if not isinstance(h, int) or isinstance(h, bool) or h < 1:
                _fail(f"network.hidden[{i}]", f"must be an integer >= 1, got {h!r}", "network.hidden=[256,256]")
    else:
        _int(cfg, "network.hidden", ge=1, example=256)
    _int(cfg, "network.layers", ge=1, example=1)
    if isinstance(hidden, ListConfig) and len(hidden) != cfg.network.layers:
        _fail("network.hidden", f"lists {len(hidden)} layer sizes but network.layers={cfg.network.layers}",
              f"network.layers={len(hidden)}")
    recurrent = cfg.network.recurrent
    if isinstance(recurrent, ListConfig):
        if len(recurrent) != cfg.network.layers or not all(isinstance(r, bool) for r in recurrent):
            _fail("network.recurrent", f"must be true/false or a list of {cfg.network.layers} booleans, "
                  f"got {list(recurrent)!r}", "network.recurrent=true")
    else:
        _bool(cfg, "network.recurrent")
    for key in ("ff_mean", "rec_mean", "out_mean"):
        _num(cfg, f"network.init.{key}", example=0.0)
    for key in ("ff_std", "rec_std", "out_std"):
        _num(cfg, f"network.init.{key}", ge=0, example=0.01)
    _num(cfg, "network.regularizer.strength", ge=0, example=0.0)
    _num(cfg, "network.regularizer.nu", ge=0, example=14)
    delays = cfg.network.get("delays")
    if delays is not None:
        if not isinstance(delays, DictConfig):
            _fail("network.delays", f"must be a mapping of connection kind/name to delay settings, "
                  f"got {delays!r}", "network.delays={}")
        from eventkit.engine.topology import parse_delays

        try:
            parsed = parse_delays(OmegaConf.to_container(delays, resolve=True))
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        if any(d.learn for d in parsed.values()):
            _num(cfg, "network.delay_lr", gt=0, example=0.1)

    # trainer
    _section(cfg, "trainer", ["epochs", "batch_size", "val_fraction", "grad_clip", "silent_fix", "threads",
                              "resume", "eval_batch_size", "progress"])
    for key, allowed in (("trainer", TRAINER_KEYS), ("network", NETWORK_KEYS), ("network.init", INIT_KEYS),
                         ("network.regularizer", ("strength", "nu"))):
        unknown = sorted(set(OmegaConf.select(cfg, key).keys()) - set(allowed))
        if unknown:
            _fail(f"{key}.{unknown[0]}", f"is not a known key of {key} (known: {', '.join(allowed)})",
                  f"remove it or correct the spelling")
    _int(cfg, "trainer.epochs", ge=1, example=30)
    _int(cfg, "trainer.batch_size", ge=1, example=32)
    _int(cfg, "trainer.eval_batch_size", ge=1, example=256)
    _num(cfg, "trainer.val_fraction", ge=0, lt=1, example=0.1)
    if cfg.trainer.grad_clip is not None:
        _num(cfg, "trainer.grad_clip", gt=0, example=1.0)
    _num(cfg, "trainer.silent_fix", ge=0, example=0.002)
    _int(cfg, "trainer.threads", ge=1, example=2, allow_none=True)
    _bool(cfg, "trainer.progress")
    _int(cfg, "trainer.patience", ge=1, example=15, allow_none=True)
    if "distributed" in cfg.trainer:
        _bool(cfg, "trainer.distributed")
    resume = cfg.trainer.resume
    if resume is not None:
        from eventkit.rundir import CHECKPOINTS, LAST

        path = Path(str(resume))
        if not (path / CHECKPOINTS / LAST).is_file():
            _fail("trainer.resume", f"{path} is not a run directory with a {CHECKPOINTS}/{LAST} checkpoint",
                  "trainer.resume=outputs/<date>/<time> of a run that finished at least one epoch")
    return cfg


# --------------------------------------------------------------------- plugin config dirs
def _make_search_path_plugin():
    from hydra.core.config_search_path import ConfigSearchPath
    from hydra.plugins.search_path_plugin import SearchPathPlugin

    class EventkitSearchPath(SearchPathPlugin):
        """Adds the config directories that eventkit plugins register (``register_config_dirs``),
        so ``dataset=shd`` finds ``dataset/shd.yaml`` shipped inside the tonic plugin package."""

        def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
            ours = str(conf_dir())
            if not any(str(e.path) in (ours, f"file://{ours}") for e in search_path.get_path()):
                return  # some other Hydra app in this process
            from eventkit.registry import get_registry

            for path, provider in get_registry().config_dirs:
                if not path.startswith(("pkg://", "file://")):
                    path = f"file://{Path(path).resolve()}"
                search_path.append(provider=f"eventkit-plugin:{provider.split('(')[-1].rstrip(')')}", path=path)

    return EventkitSearchPath


_PLUGIN_CLASS = None


def install_search_path_plugin() -> None:
    """Register the search-path plugin with Hydra (idempotent). Done programmatically rather than
    through the ``hydra_plugins`` namespace so it only affects eventkit's own entry points."""
    global _PLUGIN_CLASS
    from hydra.core.plugins import Plugins

    if _PLUGIN_CLASS is None:
        _PLUGIN_CLASS = _make_search_path_plugin()
    Plugins.instance().register(_PLUGIN_CLASS)
