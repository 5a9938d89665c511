"""The composed config: where it lives, how to compose it in code, and its validation.

Validation happens once, right after composition and before anything expensive, so a typo or an
impossible value costs a second, not a training run. Every error names the config key, what was
wrong and how to fix it (as a command-line override).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError, MissingMandatoryValue, OmegaConfBaseException

from eventkit.base.errors import ConfigError, fix_overrides  # noqa: F401  (fix_overrides: part of this module's API)

HYDRA_VERSION_BASE = "1.3"
CONFIG_NAME = "config"


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
    raise ConfigError(
        f"eventkit.by_size: no value for size {key!r}; the table has sizes "
        f"{', '.join(map(str, table))}. Add an entry or choose one of those sizes."
    )


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _on_rank_zero(value: Any, other: Any = None) -> Any:
    """``${eventkit.on_rank_zero:VALUE}``: VALUE in a single process and in rank 0 of a
    multi-process launch, None (or the second argument) in the other processes (so that
    ``hydra.output_subdir`` is written by rank 0 alone; see eventkit.training.launch)."""
    from eventkit.training.launch import launch_rank

    return value if launch_rank() == 0 else other


def register_resolvers() -> None:
    """Register eventkit's OmegaConf resolvers (idempotent)."""
    for name, fn in (
        ("eventkit.by_size", _by_size),
        ("eventkit.cores", _cores),
        ("eventkit.on_rank_zero", _on_rank_zero),
    ):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)


register_resolvers()


# ------------------------------------------------------------------------- finding configs
def conf_dir() -> Path:
    """The primary config directory: ``eventkit/conf`` inside an installed wheel, the repository's
    ``conf/`` in a checkout or editable install."""
    pkg = Path(__file__).resolve().parent.parent
    for candidate in (pkg / "conf", pkg.parent / "conf"):
        if (candidate / f"{CONFIG_NAME}.yaml").is_file():
            return candidate
    raise FileNotFoundError(f"eventkit's config directory was not found next to {pkg}; reinstall eventkit")


#: groups that conf/config.yaml lists as ``group: null`` so that ``group=x`` works; Hydra 1.3
#: rejects ``+group=x`` for them ("Multiple values"), so both spellings are accepted by
#: rewriting the ``+`` form (as README.md and docs/ write ``+experiment=...``).
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
        return _compose(CONFIG_NAME, overrides=normalize_overrides(overrides), return_hydra_config=return_hydra_config)


# ------------------------------------------------------------------------------ validation
def _fail(key: str, problem: str, fix: str) -> None:
    raise ConfigError(f"{key}: {problem}. Fix: {fix}")


def _missing_keys(cfg: DictConfig | ListConfig, prefix: str = "") -> list[str]:
    """The keys whose value is ``???``, in the config's order. Interpolations are not followed
    (:func:`resolve` reports a broken one by its own key), so this reads each value only where it
    is not an interpolation (``OmegaConf.missing_keys`` would resolve them, and is unordered)."""
    out = []
    for key in cfg.keys() if isinstance(cfg, DictConfig) else range(len(cfg)):
        full = f"{prefix}.{key}" if prefix else str(key)
        if OmegaConf.is_missing(cfg, key):
            out.append(full)
        elif not OmegaConf.is_interpolation(cfg, key):
            child = cfg[key]
            if isinstance(child, (DictConfig, ListConfig)):
                out += _missing_keys(child, full)
    return out


def resolve(cfg: DictConfig) -> DictConfig:
    """Resolve every interpolation, turning OmegaConf errors into ConfigErrors that name the key."""
    missing = _missing_keys(cfg)
    if missing:
        key = missing[0]
        raise ConfigError(
            f"{key}: required value is missing (???). Fix: pass {key}=<value> on the command line"
            + (f" (also missing: {', '.join(missing[1:])})" if len(missing) > 1 else "")
        )
    try:
        resolved = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    except ConfigError:
        raise
    except MissingMandatoryValue as exc:
        raise ConfigError(f"{exc.full_key}: required value is missing. Fix: pass {exc.full_key}=<value>") from None
    except InterpolationResolutionError as exc:
        raise ConfigError(
            f"{exc.full_key}: {str(exc.msg).splitlines()[0]}. Fix: correct the interpolation "
            f"in that key (e.g. {exc.full_key}=<value>)"
        ) from None
    except OmegaConfBaseException as exc:
        raise ConfigError(f"{getattr(exc, 'full_key', '?')}: {str(exc).splitlines()[0]}") from None
    return resolved


GROUPS = ("dataset", "network", "neuron", "readout", "loss", "optimizer", "scheduler", "target", "logger", "trainer")
#: groups that choose a registered component by ``name``; the component's factory signature is
#: its schema (checked by the registry when it is built)
NAMED_GROUPS = ("dataset", "neuron", "readout", "loss", "optimizer", "scheduler", "target", "logger")


def _registered(registry: Any, kind: str, name: Any, key: str) -> None:
    if not isinstance(name, str):
        _fail(key, f"must be a component name (string), got {name!r}", f"{key.rpartition('.')[0]}=<option>")
    if registry is not None:
        from eventkit.base.registry import RegistryError

        try:
            registry.get(kind, name)
        except RegistryError as exc:
            raise ConfigError(f"{key}: {exc}") from None


#: arguments a component's factory takes before its config keys (the optimizer: the network's
#: parameter groups; the scheduler: the optimizer)
POSITIONAL = {"optimizer": 1, "scheduler": 1}


def _accepts(registry: Any, group: str, node: DictConfig) -> None:
    """The component's factory takes the group's keys (checked now, before data are loaded)."""
    if registry is None:
        return
    from eventkit.base.registry import RegistryError, check_kwargs

    config = {k: v for k, v in node.items() if k != "name" and not (group == "dataset" and k == "augment")}
    entry = registry.get(group, node.get("name"))
    try:
        check_kwargs(
            entry.factory, config, where=group, n_positional=POSITIONAL.get(group, 0), label=f"{group} {entry.name!r}"
        )
    except RegistryError as exc:
        raise ConfigError(str(exc)) from None


def validate(cfg: DictConfig, registry: Any | None = None) -> DictConfig:
    """Check a composed config and return it resolved; raises ConfigError naming the key and the
    fix. The core's own sections are checked by their schemas (``trainer``:
    :class:`eventkit.training.loop.TrainerConfig`, ``network``: :class:`eventkit.components.networks.NetworkConfig`);
    with a ``registry``, every named component must be registered (its arguments are checked by
    the registry when it is built). What remains here are checks across groups."""
    from eventkit.components.networks import NetworkConfig
    from eventkit.base.schema import from_config
    from eventkit.training.loop import TrainerConfig

    cfg = resolve(cfg)
    for group in GROUPS:
        if group not in cfg or cfg[group] is None:
            _fail(group, "config group is missing", f"choose one with {group}=<option> (see --help)")
        if not isinstance(cfg[group], DictConfig):
            _fail(group, f"must be a config group (a mapping), got {cfg[group]!r}", f"choose one with {group}=<option>")
    for group in NAMED_GROUPS:
        _registered(registry, group, cfg[group].get("name"), f"{group}.name")
        _accepts(registry, group, cfg[group])
    seed = cfg.get("seed")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        _fail("seed", f"must be an integer >= 0, got {seed!r}", "seed=0")
    network = from_config(NetworkConfig, cfg.network, "network")
    from_config(TrainerConfig, cfg.trainer, "trainer")
    _registered(registry, "neuron", network.output["name"], "network.output.name")

    dt = _check_dataset(cfg, registry)
    _check_neurons(cfg, registry, dt)
    return cfg


def _check_dataset(cfg: DictConfig, registry: Any) -> float:
    """``dataset.dt`` and ``dataset.augment``; returns dt."""
    dt = cfg.dataset.get("dt")
    if not isinstance(dt, (int, float)) or isinstance(dt, bool) or not math.isfinite(dt) or dt <= 0:
        _fail("dataset.dt", f"must be a number > 0 (ms), got {dt!r}", "dataset.dt=1.0")
    augment = cfg.dataset.get("augment")
    augment = ListConfig([]) if augment is None else augment
    if not isinstance(augment, ListConfig):
        _fail("dataset.augment", f"must be a list of {{name: ...}} entries, got {augment!r}", "dataset.augment=[]")
    for i, aug in enumerate(augment):
        if not isinstance(aug, DictConfig):
            _fail(
                f"dataset.augment[{i}]",
                f"must be a mapping with a 'name' key, got {aug!r}",
                "write it as {name: <augmentation>, ...}",
            )
        _registered(registry, "augmentation", aug.get("name"), f"dataset.augment[{i}].name")
    return dt


def _check_neurons(cfg: DictConfig, registry: Any, dt: float) -> None:
    """The neuron models' own arguments, and time constants the dataset's grid resolves."""
    if registry is not None:  # neuron models check their own arguments; building one costs nothing
        from eventkit.base.registry import RegistryError

        for key, node in (("neuron", cfg.neuron), ("network.output", cfg.network.output)):
            try:
                registry.build("neuron", OmegaConf.to_container(node), where=key)
            except RegistryError as exc:
                raise ConfigError(str(exc)) from None
    # time constants must be resolvable by the exponential integration on the dataset's grid
    for key, node in (("neuron", cfg.neuron), ("network.output", cfg.network.output)):
        for tau in ("tau_mem", "tau_syn"):
            value = node.get(tau)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < dt:
                _fail(
                    f"{key}.{tau}",
                    f"time constant {value} ms is shorter than the time step dataset.dt={dt} ms, "
                    "which the exponential integration cannot resolve",
                    f"{key}.{tau}={dt:g} (or lower dataset.dt, e.g. dataset.dt={value / 2:g})",
                )


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
            from eventkit.base.registry import get_registry

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
