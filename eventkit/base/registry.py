"""One registry of named components, filled by pluggy plugins.

Why a registry: configs name components (``neuron: {name: lif}``) instead of import paths, so a
user switches dataset, neuron model or target by changing config, and a third-party package adds
components just by being installed. The built-ins go through the very same hooks as external
plugins (as pytest does), so the core never names a particular dataset, neuron or target.

Plugins come from three places, in this order:

1. the built-in modules in :data:`BUILTIN_MODULES`;
2. installed distributions that declare an entry point in the ``eventkit`` group;
3. objects passed explicitly (tests use this to add a temporary plugin).

Set ``EVENTKIT_DISABLE_PLUGINS=name1,name2`` to skip plugins by name (entry-point name or module
name). A plugin that fails to import does not stop eventkit: it is reported on stderr, listed by
``python -m eventkit --plugins``, and named again in the error if a component it would have
provided is requested.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Callable, Iterable, Mapping

import pluggy

from eventkit.base import hookspecs

ENTRY_POINT_GROUP = "eventkit"
DISABLE_ENV = "EVENTKIT_DISABLE_PLUGINS"

#: modules of the core distribution that register built-in components
BUILTIN_MODULES = (
    "eventkit.engine.builtins",
    "eventkit.data.builtins",
    "eventkit.components.augment",
    "eventkit.components.losses",
    "eventkit.components.optimizers",
    "eventkit.components.schedules",
    "eventkit.components.targets",
    "eventkit.components.loggers",
)

#: component kind -> hook that registers it (kind names match the config groups)
KINDS = {
    "dataset": "register_datasets",
    "augmentation": "register_augmentations",
    "neuron": "register_neurons",
    "readout": "register_readouts",
    "loss": "register_losses",
    "optimizer": "register_optimizers",
    "scheduler": "register_schedulers",
    "target": "register_targets",
    "logger": "register_loggers",
    "network_format": "register_network_formats",
}


#: What the plugins kept in eventkit's repository (each its own distribution under plugins/)
#: provide, as data: naming one of these components without its plugin installed says which
#: distribution to install. The core imports none of them; a test checks this table against what
#: the installed plugins register.
BUILTIN_PLUGINS: dict[str, dict[str, tuple[str, ...]]] = {
    "eventkit-tonic": {
        "dataset": ("shd", "ssc"),
        "experiment": ("shd", "shd_alif", "shd_delays", "shd_fast", "shd_tau_per_neuron", "ssc", "ssc_delays"),
    },
    "eventkit-loihi2": {"target": ("loihi2",), "neuron": ("loihi_cuba", "loihi_li")},
    "eventkit-wandb": {"logger": ("wandb",)},
    "eventkit-nir": {"target": ("nir",), "network_format": (".nir",)},
}


def install_hint(group: str, name: str) -> str | None:
    """'<group> <name> comes with the X plugin, which is not installed. Fix: ...' when ``name`` is
    a component of a built-in plugin; None otherwise."""
    for dist, groups in BUILTIN_PLUGINS.items():
        if name in groups.get(group, ()):
            off = _disabled_entry_points(dist)
            if off:
                rest = sorted(_disabled() - set(off))
                fix = f"{DISABLE_ENV}={','.join(rest)}" if rest else f"unset {DISABLE_ENV}"
                return (
                    f"{group} {name!r} comes with the {dist} plugin, which is disabled by "
                    f"{DISABLE_ENV}={os.environ.get(DISABLE_ENV, '')}. Fix: {fix}"
                )
            return (
                f"{group} {name!r} comes with the {dist} plugin, which is not installed. "
                f"Fix: pip install -e plugins/{dist.replace('-', '_')} (in the eventkit checkout)"
            )
    return None


def _disabled_entry_points(dist: str) -> list[str]:
    """The names of ``dist``'s eventkit entry points that EVENTKIT_DISABLE_PLUGINS switches off
    (empty when it is not installed or nothing of it is disabled)."""
    try:
        eps = metadata.distribution(dist).entry_points
    except metadata.PackageNotFoundError:
        return []
    disabled = _disabled()
    return [ep.name for ep in eps if ep.group == ENTRY_POINT_GROUP and ep.name in disabled]


class RegistryError(ValueError):
    """A component name is unknown, duplicated, or its config does not fit its factory."""


@dataclass(frozen=True)
class Entry:
    """One registered component."""

    kind: str
    name: str
    factory: Callable[..., Any]
    description: str
    provider: str  # e.g. "eventkit 0.1.0 (eventkit.components.optimizers)"


@dataclass(frozen=True)
class PluginInfo:
    name: str
    provider: str
    error: str | None = None  # set when the plugin could not be loaded


@dataclass
class Registry:
    """Components by kind and name, plus the config directories the plugins contribute."""

    entries: dict[str, dict[str, Entry]] = field(default_factory=lambda: {k: {} for k in KINDS})
    config_dirs: list[tuple[str, str]] = field(default_factory=list)  # (path or pkg:// url, provider)
    plugins: list[PluginInfo] = field(default_factory=list)

    # ------------------------------------------------------------------ lookup
    def names(self, kind: str) -> list[str]:
        self._check_kind(kind)
        return sorted(self.entries[kind])

    def get(self, kind: str, name: str) -> Entry:
        """The entry for ``name``; unknown names raise RegistryError listing what is known."""
        self._check_kind(kind)
        if not isinstance(name, str) or name not in self.entries[kind]:
            hint = install_hint(kind, name) if isinstance(name, str) else None
            if hint and not any(p.error for p in self.plugins):
                raise RegistryError(hint)
            known = self.entries[kind]
            listing = ", ".join(f"{n} ({e.provider})" for n, e in sorted(known.items())) or "none"
            msg = f"unknown {kind} {name!r}. Known {kind} names: {listing}."
            failed = [p for p in self.plugins if p.error]
            if failed:
                msg += " Plugins that failed to load (they may provide it): " + "; ".join(
                    f"{p.name} [{p.provider}]: {p.error}" for p in failed
                )
            msg += f" Pick one of the known names, or install the plugin that provides {name!r}."
            raise RegistryError(msg)
        return self.entries[kind][name]

    def build(self, kind: str, config: Mapping[str, Any], *args: Any, where: str | None = None) -> Any:
        """Build a component from its config group: ``name`` picks the factory, the other keys are
        its keyword arguments. ``where`` is the config key shown in errors (default: ``kind``)."""
        where = where or kind
        if not isinstance(config, Mapping) or "name" not in config:
            raise RegistryError(
                f"{where}: needs a 'name' key choosing a registered {kind} "
                f"(known: {', '.join(self.names(kind)) or 'none'})"
            )
        config = dict(config)
        name = config.pop("name")
        entry = self.get(kind, name)
        check_kwargs(entry.factory, config, where=where, n_positional=len(args), label=f"{kind} {name!r}")
        try:
            return entry.factory(*args, **config)
        except (ValueError, TypeError) as exc:
            # a factory names the argument it rejects first ("tau_mem: must be > 0 ... Fix: tau_mem=20"):
            # that becomes the config key ("neuron.tau_mem: ... Fix: neuron.tau_mem=20")
            text = str(exc).rstrip(".")
            arg = text.partition(": ")[0]
            if arg in config:
                text = text.replace(f"Fix: {arg}=", f"Fix: {where}.{arg}=")
                raise RegistryError(f"{where}.{text}") from exc
            hint = (
                ""
                if "Fix:" in text
                else f". Fix: change that value under {where} (python -m eventkit --cfg job shows it)"
            )
            raise RegistryError(f"{where} ({kind} {name!r}): {text}{hint}") from exc

    # ------------------------------------------------------------------ listing
    def listing(self) -> str:
        """Human-readable table of every component: kind, name, provider, description."""
        rows = [("KIND", "NAME", "PROVIDED BY", "DESCRIPTION")]
        for kind in KINDS:
            for name, e in sorted(self.entries[kind].items()):
                desc = (e.description or "").strip().splitlines()[0] if e.description else ""
                rows.append((kind, name, e.provider, desc if len(desc) <= 70 else desc[:67] + "..."))
        widths = [max(len(r[i]) for r in rows) for i in range(3)]
        lines = ["  ".join(r[i].ljust(widths[i]) for i in range(3)) + "  " + r[3] for r in rows]
        lines.append("")
        lines.append("Config directories:")
        lines += [f"  {path}  ({prov})" for path, prov in self.config_dirs] or ["  none"]
        lines.append("")
        lines.append("Plugins:")
        for p in self.plugins:
            state = f"FAILED: {p.error}" if p.error else "ok"
            lines.append(f"  {p.name}  ({p.provider})  {state}")
        return "\n".join(line.rstrip() for line in lines)

    def _check_kind(self, kind: str) -> None:
        if kind not in KINDS:
            raise RegistryError(f"unknown component kind {kind!r}; kinds are: {', '.join(KINDS)}")


def takes_key(factory: Callable, key: str) -> bool:
    """Whether ``factory`` accepts the keyword ``key`` (any keyword, if it takes ``**kwargs``)."""
    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(
        p.kind is p.VAR_KEYWORD or (p.name == key and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
        for p in params
    )


def check_kwargs(
    factory: Callable, kwargs: Mapping[str, Any], *, where: str, n_positional: int = 0, label: str = ""
) -> None:
    """Raise RegistryError if ``factory`` cannot take ``kwargs`` (unknown or missing keys), so the
    user sees which config key is wrong instead of a TypeError from deep inside the factory."""
    try:
        sig = inspect.signature(factory)
    except (TypeError, ValueError):
        return
    params = list(sig.parameters.values())
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    accepted = [p.name for p in params[n_positional:] if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    unknown = [k for k in kwargs if k not in accepted]
    if unknown:
        raise RegistryError(
            f"{where}: {label or 'component'} does not accept key(s) {', '.join(map(repr, unknown))}. "
            f"Accepted keys: {', '.join(accepted) or 'none'}. Fix: {' '.join(f'~{where}.{k}' for k in unknown)} "
            "(a recipe may set them for the component it chose), or rename them"
        )
    skip = {p.name for p in positional[:n_positional]}
    missing = [
        p.name
        for p in params
        if p.name not in skip
        and p.default is p.empty
        and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        and p.name not in kwargs
    ]
    if missing:
        raise RegistryError(
            f"{where}: missing required key(s) {', '.join(missing)} for {label or 'component'}. "
            f"Add them, e.g. {where}.{missing[0]}=<value>."
        )


# ---------------------------------------------------------------------- building the registry
def _provider_of_module(module_name: str) -> str:
    top = module_name.split(".")[0]
    try:
        dists = metadata.packages_distributions().get(top, [])
    except Exception:  # pragma: no cover - metadata backends vary
        dists = []
    for dist in dists:
        try:
            return f"{dist} {metadata.version(dist)} ({module_name})"
        except metadata.PackageNotFoundError:
            continue
    if top == "eventkit":
        from eventkit.base.version import __version__

        return f"eventkit {__version__} ({module_name})"
    return module_name


def _disabled() -> set[str]:
    return {s.strip() for s in os.environ.get(DISABLE_ENV, "").split(",") if s.strip()}


def create(extra_plugins: Iterable[Any] = (), *, entry_points: bool = True, builtins: bool = True) -> Registry:
    """Load the plugins and collect everything they register.

    Raises RegistryError when two plugins register the same name for the same kind.
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    registry = Registry()
    providers: dict[str, str] = {}  # plugin name -> provider string
    disabled = _disabled()

    def add(obj: Any, name: str, provider: str) -> None:
        if pm.is_registered(obj) or pm.get_plugin(name) is not None:
            return  # the same distribution seen twice on sys.path
        pm.register(obj, name=name)
        providers[name] = provider
        registry.plugins.append(PluginInfo(name, provider))

    def failed(name: str, provider: str, exc: BaseException) -> None:
        err = f"{type(exc).__name__}: {exc}"
        registry.plugins[:] = [p for p in registry.plugins if p.name != name]
        registry.plugins.append(PluginInfo(name, provider, err))
        print(f"eventkit: plugin {name!r} ({provider}) failed to load and is skipped: {err}", file=sys.stderr)

    if builtins:
        for mod_name in BUILTIN_MODULES:
            if mod_name in disabled:
                continue
            provider = _provider_of_module(mod_name)
            try:
                add(importlib.import_module(mod_name), mod_name, provider)
            except ImportError as exc:
                failed(mod_name, provider, exc)

    if entry_points:
        seen: set[tuple[str, str]] = set()
        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
            if ep.name in disabled or (ep.name, ep.value) in seen:
                continue
            seen.add((ep.name, ep.value))
            dist = getattr(ep, "dist", None)
            provider = f"{dist.name} {dist.version}" if dist is not None else ep.value
            provider = f"{provider} ({ep.value})"
            try:
                add(ep.load(), ep.name, provider)
            except Exception as exc:  # a broken third-party plugin must not take eventkit down
                failed(ep.name, provider, exc)

    for i, obj in enumerate(extra_plugins):
        name = getattr(obj, "__name__", None) or f"{type(obj).__name__}-{i}"
        if name not in disabled:
            add(obj, name, name)

    for kind, hook_name in KINDS.items():
        hook = getattr(pm.hook, hook_name)
        for impl in reversed(hook.get_hookimpls()):  # registration order
            provider = providers.get(impl.plugin_name, impl.plugin_name)

            def register(name: str, factory: Callable, description: str = "", *, _k=kind, _p=provider) -> None:
                if not isinstance(name, str) or not name:
                    raise RegistryError(f"{_p}: {_k} names must be non-empty strings, got {name!r}")
                if not callable(factory):
                    raise RegistryError(f"{_p}: factory for {_k} {name!r} is not callable")
                old = registry.entries[_k].get(name)
                if old is not None:
                    raise RegistryError(
                        f"{_k} {name!r} is registered twice: by {old.provider} and by {_p}. "
                        f"Uninstall one of them or disable it with {DISABLE_ENV}=<plugin name>."
                    )
                registry.entries[_k][name] = Entry(_k, name, factory, description, _p)

            try:
                impl.function(register=register)
            except RegistryError:
                raise
            except Exception as exc:  # a broken third-party hook must not take eventkit down
                failed(impl.plugin_name, provider, exc)

    for impl in reversed(pm.hook.register_config_dirs.get_hookimpls()):
        provider = providers.get(impl.plugin_name, impl.plugin_name)
        impl.function(register=lambda path, _p=provider: registry.config_dirs.append((str(path), _p)))
    return registry


_CACHE: Registry | None = None


def get_registry(refresh: bool = False) -> Registry:
    """The process-wide registry (built once; ``refresh=True`` rebuilds it)."""
    global _CACHE
    if _CACHE is None or refresh:
        _CACHE = create()
    return _CACHE
