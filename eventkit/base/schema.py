"""Typed config sections: a dataclass is the schema of a config group, declared once, next to the
code that uses it, and the code receives the typed object, never the raw config.

    @dataclass(frozen=True)
    class TrainerConfig:
        epochs: int = setting(40, ge=1)
        grad_clip: float | None = setting(None, gt=0, example=1.0)

    trainer = from_config(TrainerConfig, cfg.trainer, "trainer")

:func:`from_config` checks every key against the fields (unknown and missing keys, types from
the annotations, bounds from :func:`setting`) and raises :class:`eventkit.running.config.ConfigError` in
eventkit's one-line format, ``<key>: <problem>. Fix: <override>``. A field typed as another
schema dataclass is checked recursively; ``__post_init__`` holds checks that involve several
fields (raise ``ValueError("<field>: ...")`` there).

Why plain dataclasses checked after composition rather than Hydra ConfigStore schemas: the
named components (datasets, neurons, losses, targets ...) are plugins whose factory signatures
already are their schemas (:func:`eventkit.base.registry.check_kwargs` checks them), so only the
core's own sections need one; OmegaConf structured configs check types but not ranges, report in
several lines, and would have to be attached to every YAML file through its defaults list.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any, Mapping, TypeVar

from omegaconf import DictConfig, ListConfig, OmegaConf

T = TypeVar("T")


def setting(
    default: Any = dataclasses.MISSING,
    *,
    gt: float | None = None,
    ge: float | None = None,
    lt: float | None = None,
    example: Any = None,
    doc: str = "",
) -> Any:
    """A schema field: its default (omit for a required key), bounds for numbers, and the value
    to suggest in the "Fix:" hint."""
    meta = {"gt": gt, "ge": ge, "lt": lt, "example": example, "doc": doc}
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def _fail(key: str, problem: str, fix: str):
    from eventkit.base.errors import ConfigError

    raise ConfigError(f"{key}: {problem}. Fix: {fix}")


def plain(node: Any) -> Any:
    """A config node as plain Python containers (interpolations resolved); other values as they are."""
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, (DictConfig, ListConfig)) else node


def _describe(tp: Any) -> str:
    names = {
        int: "an integer",
        float: "a number",
        bool: "true or false",
        str: "a string",
        type(None): "null",
        list: "a list",
        dict: "a mapping",
    }
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in args)
    if typing.get_origin(tp) is list:
        return f"a list of {_describe(args[0]).removeprefix('a ').removeprefix('an ')}s" if args else "a list"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return names.get(typing.get_origin(tp) or tp, getattr(tp, "__name__", str(tp)))


def _matches(value: Any, tp: Any) -> bool:
    if tp is Any:
        return True
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, a) for a in args)
    if tp is type(None):
        return value is None
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if origin is list:
        return isinstance(value, list) and (not args or all(_matches(v, args[0]) for v in value))
    if origin is dict or tp is dict:
        return isinstance(value, dict)
    if dataclasses.is_dataclass(tp):
        return isinstance(value, Mapping)
    return isinstance(value, origin or tp)


def from_config(cls: type[T], node: Any, key: str) -> T:
    """``cls`` built from the config section ``node`` found at ``key``; ConfigError on any
    problem (see the module docstring)."""
    values = plain(node)
    if not isinstance(values, Mapping):
        _fail(key, f"must be a mapping, got {values!r}", f"choose one with {key}=<option>")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        _fail(
            f"{key}.{unknown[0]}",
            f"is not a known key of {key} (known: {', '.join(fields)})",
            "remove it or correct the spelling",
        )
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, f in fields.items():
        full = f"{key}.{name}"
        meta = f.metadata
        example = meta.get("example")
        if name not in values:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                _fail(full, "is missing", f"add it to the {key} config or pass +{full}=<value>")
            continue
        value, tp = values[name], hints[name]
        if isinstance(value, float) and not math.isfinite(value):
            _fail(full, f"must be finite, got {value}", f"{full}={example if example is not None else '<number>'}")
        if not _matches(value, tp):
            _fail(
                full,
                f"must be {_describe(tp)}, got {value!r} ({type(value).__name__})",
                f"{full}={example if example is not None else '<value>'}",
            )
        nested = next((a for a in (tp, *typing.get_args(tp)) if dataclasses.is_dataclass(a)), None)
        if nested is not None and isinstance(value, Mapping):
            value = from_config(nested, value, full)
        for bound, ok, word in (
            ("gt", lambda v, b: v > b, ">"),
            ("ge", lambda v, b: v >= b, ">="),
            ("lt", lambda v, b: v < b, "<"),
        ):
            limit = meta.get(bound)
            if (
                limit is not None
                and isinstance(value, (int, float))
                and not isinstance(value, bool)
                and not ok(value, limit)
            ):
                _fail(
                    full,
                    f"must be {word} {limit}, got {value}",
                    f"{full}={example if example is not None else '<number>'}",
                )
        kwargs[name] = value
    try:
        return cls(**kwargs)
    except ValueError as exc:  # __post_init__: "<field>: <problem>. Fix: <hint>"
        field_name, _, rest = str(exc).partition(": ")
        from eventkit.base.errors import ConfigError

        if str(exc).startswith(f"{key}."):  # already names its full key
            raise ConfigError(str(exc)) from None
        if field_name in fields:
            raise ConfigError(f"{key}.{field_name}: {rest}") from None
        raise ConfigError(f"{key}: {exc}") from None
