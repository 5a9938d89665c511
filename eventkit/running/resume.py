"""``trainer.resume=DIR``: continue the run recorded in DIR, with the config it ran with.

A resumed run's config is DIR's ``config_resolved.yaml`` (the config that actually ran there),
never the current defaults: its checkpoint holds the optimizer and schedule state of that config,
so training it under other values would record one config and run another. Only the keys in
:data:`MAY_CHANGE` (and ``hydra.*``) may differ; any other override typed on this command line
that changes a recorded value is refused before anything is written. Extending a run
(``trainer.epochs`` above the recorded value) is refused when its schedule was laid out for the
recorded number of epochs (it has a ``scheduler.epochs`` key, as ``cosine`` does: its lr has
already annealed to ``min_lr``), and allowed for schedules that do not depend on it
(``constant``, ``warmup_ema_halving``), which continue from their checkpointed state.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from omegaconf import DictConfig, OmegaConf, open_dict

from eventkit.base.errors import ConfigError
from eventkit.running.config import resolve
from eventkit.rundir.layout import CHECKPOINTS, LAST

#: what a resumed run may change: where it resumes from, how long it trains, and how it shows
#: progress and uses the machine (these do not change what is computed; trainer.device changes
#: it only by float rounding, and a data-parallel run computes a single process's steps bit for bit)
MAY_CHANGE = (
    "trainer.resume",
    "trainer.epochs",
    "trainer.progress",
    "trainer.threads",
    "trainer.device",
    "trainer.distributed",
)
RECORD = "config_resolved.yaml"
_UNSET = object()


def resumed_config(cfg: DictConfig, explicit: Sequence[str] = ()) -> DictConfig:
    """The config a run with ``trainer.resume`` set actually trains with: DIR's recorded config,
    with the keys of :data:`MAY_CHANGE` taken from this command. From the command line
    (``explicit``: the overrides typed, ``key=value``) only the typed ones are taken; from Python
    (``explicit=()``) the values of those keys in ``cfg`` are taken and every other value of
    ``cfg`` is ignored. Raises ConfigError (one line, naming the key and the fix) for a typed
    override that changes a recorded value, or an impossible change of ``trainer.epochs``.
    Prints one line saying what is resumed. Returns ``cfg`` unchanged when it does not resume,
    or when DIR is not a run directory (validation reports that)."""
    resume = _select(cfg, "trainer.resume")
    if not resume:
        return cfg
    path = Path(str(resume))
    if not (path / CHECKPOINTS / LAST).is_file():
        return cfg
    if not (path / RECORD).is_file():
        raise ConfigError(
            f"trainer.resume: {path} has no {RECORD}, so the config its checkpoint was trained "
            f"with is unknown. Fix: resume a run directory written by eventkit (it records "
            f"{RECORD} before training), or start a new run"
        )
    recorded = OmegaConf.load(path / RECORD)
    rec = _leaves(OmegaConf.to_container(recorded, resolve=True))
    cur = _leaves(OmegaConf.to_container(resolve(cfg), resolve=True))

    typed = [_parse(o) for o in explicit]
    for key, text in typed:
        if _may_change(key):
            continue
        _refuse_changes(path, key, text, rec, cur)

    out = OmegaConf.create(OmegaConf.to_container(recorded, resolve=True))
    changed = []
    with open_dict(out):
        for key in MAY_CHANGE:
            if explicit and key != "trainer.resume" and not any(_covers(k, key) for k, _ in typed):
                continue
            value = cur.get(key)
            if key != "trainer.resume" and rec.get(key, _UNSET) != value:
                changed.append(f"{key} {_fmt(rec.get(key, _UNSET))} -> {_fmt(value)}")
            OmegaConf.update(out, key, value, force_add=True)

    done, new = _check_epochs(path, out, rec.get("trainer.epochs")), out.trainer.epochs
    where = (
        f"at epoch {done + 1} of {new}"
        if isinstance(new, int) and done < new
        else f"after its last epoch ({done} of {new}; nothing left to train, evaluating only)"
    )
    print(
        f"eventkit: resuming {path} {where} with its recorded config"
        + (f"; changed: {', '.join(changed)}" if changed else ""),
        flush=True,
    )
    return out


def _check_epochs(path: Path, out: DictConfig, old: Any) -> int:
    """The epochs the run in ``path`` has done; refuses a ``trainer.epochs`` below them, or one
    that changes the recorded ``old`` while the schedule was laid out for it."""
    done = _epochs_done(path)
    new = out.trainer.epochs
    if isinstance(new, int) and new < done:
        raise ConfigError(
            f"trainer.epochs: {path} has already trained {done} epochs, this command asks for {new}. "
            f"Fix: resume with trainer.epochs={max(done, old or 0)} (or more), or start a new run"
        )
    schedule_epochs = OmegaConf.select(out, "scheduler.epochs", default=None)
    if new != old and schedule_epochs is not None:
        raise ConfigError(
            f"trainer.epochs: cannot change {path} from {old} to {new} epochs: its schedule "
            f"{out.scheduler.name!r} was laid out for scheduler.epochs={schedule_epochs} (its lr "
            f"reaches scheduler.min_lr={OmegaConf.select(out, 'scheduler.min_lr', default='?')} "
            f"there, so further epochs would not train as configured). Fix: drop trainer.epochs "
            f"to finish the recorded run, or start a new run with trainer.epochs={new}"
        )
    return done


def _refuse_changes(path: Path, key: str, text: str, rec: dict, cur: dict) -> None:
    """Refuse the typed override ``text`` (for ``key``) if it changes a recorded value."""
    keys = sorted(k for k in {*rec, *cur} if _covers(key, k))
    if not keys:  # a group that is no key of the config (e.g. experiment=...): it may have set anything
        keys = sorted({*rec, *cur})
    for k in keys:
        if _may_change(k):
            continue
        before, after = rec.get(k, _UNSET), cur.get(k, _UNSET)
        if not _same(before, after):
            raise ConfigError(
                f"{k}: {path} ran with {_fmt(before)}, this command asks for {_fmt(after)} "
                f"({text}); a resumed run continues its recorded config. Fix: drop {text} to "
                f"resume {path}, or start a new run (without trainer.resume) to train with it"
            )


def _parse(override: str) -> tuple[str, str]:
    text = str(override)
    key = text.split("=", 1)[0].lstrip("~+")
    return key, text


def _covers(typed: str, key: str) -> bool:
    return key == typed or key.startswith(typed + ".")


def _may_change(key: str) -> bool:
    return key in MAY_CHANGE or key == "hydra" or key.startswith("hydra.")


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return a == b


def _leaves(node: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a.b": value}`` for every leaf of a plain config (lists and empty mappings are leaves)."""
    if isinstance(node, dict) and node:
        out: dict[str, Any] = {}
        for k, v in node.items():
            out.update(_leaves(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: node}


def _fmt(value: Any) -> str:
    return "(not set)" if value is _UNSET else json.dumps(value) if isinstance(value, (list, dict)) else str(value)


def _select(cfg: DictConfig, key: str) -> Any:
    try:
        return OmegaConf.select(cfg, key, default=None, throw_on_missing=False)
    except Exception:
        return None


def _epochs_done(path: Path) -> int:
    """The epoch of DIR's last checkpoint (its metadata only)."""
    from safetensors import safe_open

    with safe_open(str(path / CHECKPOINTS / LAST), framework="pt") as fh:
        meta = json.loads((fh.metadata() or {}).get("eventkit", "{}"))
    return int(meta.get("epoch", 0))


__all__ = ["MAY_CHANGE", "resumed_config"]
