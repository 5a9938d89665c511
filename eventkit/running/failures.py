"""How a failed run is said: one line naming the problem and its fix, no traceback.

Input errors (:data:`USER_ERRORS`: a bad config, data or file, a diverged loss, Ctrl-C) are
reported as one line; a bug keeps its traceback. ``EVENTKIT_TRACEBACK=1`` (or Hydra's
``HYDRA_FULL_ERROR=1``) asks for the traceback of any error. :func:`composition_error` says in one
line what Hydra found wrong while composing the config (an unknown option or key).
"""

from __future__ import annotations

import os
import sys
from typing import Sequence

from omegaconf import DictConfig

from eventkit.base.registry import KINDS, install_hint
from eventkit.rundir.layout import LAST, RunDir, explain_os_error
from eventkit.training.loop import NonFiniteLoss

TRACEBACK_ENV = "EVENTKIT_TRACEBACK"
#: the one hint every one-line error ends with
TRACEBACK_HINT = f"(set {TRACEBACK_ENV}=1 for the traceback)"
#: failures caused by the input (config, data, divergence): reported as one line, no traceback
USER_ERRORS = (ValueError, NonFiniteLoss, FileNotFoundError, KeyboardInterrupt)


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped the run; the message says where and how to resume."""


def explain_failure(exc: BaseException, rd: RunDir) -> BaseException:
    """The error to report for ``exc``: Ctrl-C becomes :class:`RunInterrupted` (which epoch,
    which checkpoint, how to resume); a write that failed for lack of space or permission
    becomes one line naming the path; anything else is returned unchanged."""
    if isinstance(exc, KeyboardInterrupt) and not isinstance(exc, RunInterrupted):
        return RunInterrupted(interrupted_message(rd))
    if isinstance(exc, OSError) and not isinstance(exc, USER_ERRORS):
        return explain_os_error(exc, rd.path) or exc
    return exc


def interrupted_message(rd: RunDir) -> str:
    stage, done = rd.current_stage, len(rd.metrics)
    last = rd.checkpoints / LAST
    where = f"at epoch {done + 1}" if stage == "train" else f"during {stage or 'setup'}"
    if stage in ("data", "build", None) or not last.is_file():
        return f"interrupted {where}; no epoch had completed, so there is no checkpoint to resume from"
    return (
        f"interrupted {where}; the last checkpoint is {last}; resume with: python -m eventkit trainer.resume={rd.path}"
    )


def one_line(exc: BaseException) -> str:
    """The failure as summary.json and the sweep table show it: the message's first line, after
    the exception's type when it is not an input error (then it is a bug or an interrupt)."""
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else ""
    if isinstance(exc, USER_ERRORS) and text:
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def want_traceback() -> bool:
    """A run's error with its traceback: ``EVENTKIT_TRACEBACK=1``, or Hydra's ``--verbose``."""
    if os.environ.get(TRACEBACK_ENV, "") not in ("", "0", "false"):
        return True
    try:
        from hydra.core.hydra_config import HydraConfig

        return bool(HydraConfig.get().verbose)
    except Exception:
        return False


#: Hydra launchers/sweepers that the ``sweeps`` extra installs (hydra/<kind>/<option>)
SWEEPS_EXTRA = {"hydra/launcher": ("joblib", "submitit_local", "submitit_slurm"), "hydra/sweeper": ("optuna",)}


def composition_error(exc: BaseException, overrides: Sequence[str] = ()) -> str | None:
    """One line (``<override>: <problem>. Fix: ...``) for an unknown config option or a misspelt
    key found while Hydra composes the config; None for any other error."""
    import difflib

    from hydra.errors import ConfigCompositionException, MissingConfigException
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError

    def closest(word: str, known: Sequence[str]) -> str | None:
        match = difflib.get_close_matches(word, known, n=1, cutoff=0.5)
        return match[0] if match else None

    if isinstance(exc, MissingConfigException) and exc.options is not None and exc.missing_cfg_file:
        group, _, option = str(exc.missing_cfg_file).rpartition("/")
        known = sorted(str(o) for o in exc.options)
        if option in SWEEPS_EXTRA.get(group, ()):
            asked = next((f" (asked for by {o})" for o in overrides if o.startswith("hparams_search=")), "")
            return (
                f"{group}={option}{asked}: this {group.split('/')[-1]} comes with eventkit's sweeps extra, "
                f"which is not installed. Fix: pip install -e \".[sweeps]\" (or pip install \"eventkit[sweeps]\")"
            )
        hint = install_hint(group, option)
        if hint:
            return f"{group}={option}: {hint}"
        fix = closest(option, known)
        return (
            f"{group}={option}: no such option; known: {', '.join(known) or '(none)'}. "
            f"Fix: {f'{group}={fix}' if fix else f'{group}=<one of the known options>'}"
        )
    cause = exc.__cause__
    if (
        isinstance(exc, ConfigCompositionException)
        and isinstance(cause, (ConfigKeyError, ConfigAttributeError))
        and cause.full_key
    ):
        key, parent = str(cause.full_key), cause.parent_node
        known = [str(k) for k in parent.keys()] if isinstance(parent, DictConfig) else []
        value = next((o.split("=", 1)[1] for o in overrides if o.split("=", 1)[0].lstrip("~+") == key), "<value>")
        base = key.rpartition(".")[0]
        fix = closest(str(cause.key), known)
        if base == "network.delays":  # kinds are keys already; a connection's own name is added with +
            import re

            known_kinds = ", ".join(known)
            if re.fullmatch(r"(ff|rec)\d+", str(cause.key)):
                return (
                    f"{key}: no such key; known: {known_kinds}; a connection's own delays are a new key. "
                    f"Fix: +{key}={value}"
                )
            return (
                f"{key}: no such key; known: {known_kinds} (connection kinds), or a connection's own name "
                f"(ff0, ff1, ..., rec0, ...) added with +. Fix: network.delays.{fix or 'ff'}={value}"
            )
        if base in KINDS and isinstance(parent, DictConfig):  # a component's key: which component takes it?
            return _component_key_error(key, base, str(parent.get("name", "")), known, value, fix)
        new = f"+{key}={value}"  # a key the config does not have yet
        fix = f"{base + '.' if base else ''}{fix}={value} (or, for a new key, {new})" if fix else f"add it: {new}"
        return f"{key}: no such key; known: {', '.join(known) or '(none)'}. Fix: {fix}"
    return None


def _component_key_error(key: str, kind: str, chosen: str, known: Sequence[str], value: str, close: str | None) -> str:
    """A key that the chosen component's config lacks: name the registered components of that kind
    whose factory takes it (``optimizer.momentum`` belongs to ``optimizer=sgd``, not ``adam``), so
    the fix picks one of them instead of adding a key the chosen one would refuse."""
    from eventkit.base.registry import get_registry, takes_key

    registry = get_registry()
    name = key.rpartition(".")[2]
    if chosen in registry.names(kind) and takes_key(registry.get(kind, chosen).factory, name):
        return f"{key}: no such key; known: {', '.join(known)}. Fix: +{key}={value}"
    owners = [n for n in registry.names(kind) if n != chosen and takes_key(registry.get(kind, n).factory, name)]
    head = f"{key}: no such key in {kind} {chosen!r}; known: {', '.join(known)}"
    if owners:
        return f"{head}; {', '.join(owners)} take(s) it. Fix: {kind}={owners[0]} {key}={value}"
    return f"{head}; no registered {kind} takes it. Fix: " + (
        f"{kind}.{close}={value}" if close else f"leave {key} out of the command line"
    )


def want_full_error() -> bool:
    """Hydra's errors (found while composing) with their traceback: ``EVENTKIT_TRACEBACK=1`` or
    Hydra's own ``HYDRA_FULL_ERROR=1``, as the user set them."""
    return any(os.environ.get(name, "") not in ("", "0", "false") for name in (TRACEBACK_ENV, "HYDRA_FULL_ERROR"))


def say_error(text: str) -> None:
    """One line on stderr (and in the run's log)."""
    print(text, file=sys.stderr, flush=True)
