"""Registers the ``wandb`` logger and this package's config directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from eventkit.plugin import hookimpl


def _flatten(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


class WandbLogger:
    """Logs the resolved config at start, every epoch's metrics, and the final summary.
    ``mode`` null means wandb's own default (``WANDB_MODE`` or online); ``run_name`` null names
    the wandb run after the run directory."""

    def __init__(
        self,
        project: str = "eventkit",
        entity: str | None = None,
        mode: str | None = None,
        group: str | None = None,
        tags: Sequence[str] = (),
        run_name: str | None = None,
    ):
        if mode not in (None, "online", "offline", "disabled"):
            raise ValueError(f"logger.mode must be online, offline, disabled or null, got {mode!r}")
        self.project, self.entity, self.mode = project, entity, mode
        self.group, self.tags, self.run_name = group, list(tags or []), run_name
        self.run: Any = None

    def start(self, run_dir: Path, config: dict) -> None:
        import wandb

        self.run = wandb.init(
            project=self.project,
            entity=self.entity,
            mode=self.mode,
            group=self.group,
            tags=self.tags,
            name=self.run_name or Path(run_dir).name,
            dir=str(run_dir),
            config=config,
        )

    def log(self, metrics: dict, step: int) -> None:
        if self.run is not None:
            self.run.log(dict(metrics), step=step)

    def finish(self, summary: dict) -> None:
        if self.run is None:
            return
        for key, value in _flatten(summary).items():
            if isinstance(value, (int, float, str, bool)) or value is None:
                self.run.summary[key] = value
        self.run.finish()
        self.run = None


@hookimpl
def register_loggers(register):
    register("wandb", WandbLogger, description="Weights & Biases: resolved config, per-epoch metrics, summary")


@hookimpl
def register_config_dirs(register):
    register("pkg://eventkit_wandb.conf")
