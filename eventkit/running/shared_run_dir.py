"""Hydra callback for a data-parallel launch: every process uses rank 0's run directory.

Under torchrun every process composes its own config, and ``hydra.run.dir``
(``outputs/${now:...}``) resolves to each process's own clock. :class:`SameRunDir` (first in
conf/config.yaml's callbacks, before the directory guard) settles one directory for all of them.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from eventkit.training.launch import init_process_group, launch, shutdown
from eventkit.training.parallel import DataParallel

try:
    from hydra.experimental.callback import Callback
except ImportError:  # pragma: no cover - hydra is a dependency
    Callback = object  # type: ignore[misc,assignment]


class SameRunDir(Callback):  # type: ignore[misc]
    """Hydra callback (conf/config.yaml, before the directory guard): in a torchrun launch every
    process composes its own config, and ``hydra.run.dir`` (``outputs/${now:...}``) resolves to
    each process's own clock. This joins the process group before Hydra creates the directory,
    checks rank 0's directory is usable and unused, and gives every process rank 0's directory,
    or rank 0's refusal (each process then exits with status 2). Ranks other than 0 also drop
    Hydra's record (.hydra/) and the job log's file handler, so they write nothing there."""

    def on_run_start(self, config: Any, **kwargs: Any) -> None:
        found = launch()
        if found is None:
            return
        from omegaconf import open_dict, read_write

        init_process_group(found)
        dp = DataParallel(found.rank, found.world_size)
        status, text = dp.broadcast_object(_verdict(config) if dp.is_main else None)
        if status != "ok":
            if dp.is_main:
                print(f"eventkit: error: {text}", file=sys.stderr, flush=True)
            shutdown()
            raise SystemExit(2)
        if dp.is_main:
            return
        with read_write(config.hydra), open_dict(config.hydra):
            config.hydra.run.dir = text
            config.hydra.output_subdir = None
            _drop_file_handlers(config.hydra.job_logging)

    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        found = launch()
        if found is not None and found.source == "env":
            print(
                "eventkit: error: a sweep (-m) launched by torchrun would run every job in every process, each "
                "into its own sweep directory. Fix: sweep with hydra/launcher=submitit_slurm_distributed "
                "(or submitit_local_distributed), or run one configuration per torchrun command",
                file=sys.stderr,
                flush=True,
            )
            raise SystemExit(2)


def _verdict(config: Any) -> tuple[str, str]:
    """Rank 0's word on its run directory: ("ok", the directory, created) or ("refused", why)."""
    from eventkit.rundir.layout import check_unused, check_usable

    run_dir = str(config.hydra.run.dir)
    try:
        check_usable(Path(run_dir))
        check_unused(Path(run_dir), resume=(config.get("trainer") or {}).get("resume"))
        Path(run_dir).mkdir(parents=True, exist_ok=True)  # before the others look for it
    except ValueError as exc:
        return "refused", str(exc)
    except Exception:  # e.g. an unresolvable trainer.resume: the run's own checks report it
        pass
    return "ok", run_dir


def _drop_file_handlers(logging_cfg: Any) -> None:
    """Remove the handlers that write files (``filename``) from a logging dictConfig."""
    if logging_cfg is None or "handlers" not in logging_cfg or logging_cfg.handlers is None:
        return
    files = [name for name, h in logging_cfg.handlers.items() if h is not None and "filename" in h]
    for name in files:
        del logging_cfg.handlers[name]
    users = [logging_cfg.get("root")] + list((logging_cfg.get("loggers") or {}).values())
    for user in users:
        if user is not None and user.get("handlers") is not None:
            user.handlers = [h for h in user.handlers if h not in files]
