"""``python -m eventkit``: the command line around :func:`eventkit.running.pipeline.run`.

:func:`main` rewrites the command line where a shell user means something Hydra would not
(relative ``--config-path``, ``trainer.resume`` in place, ``+experiment``), answers ``--plugins``,
and hands the rest to Hydra, whose task is one run (:func:`_task`) or, for ``--cfg job``, printing
the config that would run. Every failure ends as one line with its fix (:mod:`.failures`).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Sequence

from omegaconf import DictConfig, OmegaConf

from eventkit.base.registry import get_registry
from eventkit.rundir import runlog
from eventkit.rundir.layout import CHECKPOINTS, LAST
from eventkit.running.config import (
    CONFIG_NAME,
    HYDRA_VERSION_BASE,
    ConfigError,
    conf_dir,
    install_search_path_plugin,
    normalize_overrides,
)
from eventkit.running.failures import (
    TRACEBACK_HINT,
    USER_ERRORS,
    composition_error,
    one_line,
    say_error,
    want_full_error,
    want_traceback,
)
from eventkit.running.pipeline import adapted_config, run
from eventkit.training import launch as distributed

#: exit status of a run stopped by Ctrl-C (128 + SIGINT, as a shell reports it)
INTERRUPTED_EXIT = 130
#: exit status of a sweep in which some jobs failed (each one is recorded in its run directory)
SWEEP_FAILED_EXIT = 3


def main(argv: list[str] | None = None) -> int:
    """``python -m eventkit [overrides]``: Hydra's CLI plus ``--plugins``. Exit status 2: the run
    failed on its input; 3: a sweep finished but some of its jobs failed."""
    from eventkit.running import sweep

    argv = sys.argv[1:] if argv is None else list(argv)
    argv = normalize_overrides(_absolute_config_path(argv))
    argv += _resume_in_place(argv)
    if not any(a.startswith("hydra.job.name=") for a in argv):
        # the job's name (and so its log's, eventkit.log) however the config was chosen: a re-run
        # from a run's config_resolved.yaml has no hydra section that would set it
        argv.append("hydra.job.name=eventkit")
    sys.argv = [sys.argv[0], *argv]
    if "--plugins" in sys.argv[1:]:
        print(get_registry().listing())
        return 0
    install_search_path_plugin()
    sweep.LAST_FAILED.clear()
    task = _task
    if _shows_job_config(sys.argv[1:]):
        sys.argv, task = [sys.argv[0], *_show_config_overrides(sys.argv[1:])], _show_config
    _run_hydra(task, sys.argv[1:])
    return SWEEP_FAILED_EXIT if sweep.LAST_FAILED else 0


def _absolute_config_path(argv: Sequence[str]) -> list[str]:
    """``--config-path``/``-cp`` relative to the current directory, as a shell user means it:
    Hydra would look for a relative one inside eventkit's package ("Primary config module not
    found"), so re-running ``--config-path outputs/<date>/<time>`` would fail."""
    out = list(argv)
    for i, arg in enumerate(out):
        if arg in ("--config-path", "-cp") and i + 1 < len(out):
            out[i + 1] = _absolute(out[i + 1])
        elif arg.startswith(("--config-path=", "-cp=")):
            flag, value = arg.split("=", 1)
            out[i] = f"{flag}={_absolute(value)}"
    return out


def _absolute(path: str) -> str:
    if path.startswith(("pkg://", "file://")) or os.path.isabs(path):
        return path
    return str(Path(path).absolute())


def _resume_in_place(argv: Sequence[str]) -> list[str]:
    """``trainer.resume=DIR`` continues in DIR itself (its metrics, checkpoints and log go on
    there; manifest.json keeps the earlier attempts), unless ``hydra.run.dir`` says otherwise, in
    a sweep, or when DIR holds no checkpoint (validation then says what is wrong, and no directory
    is made for it). Hydra's record of this command goes to ``DIR/.hydra/resumed-<time>``,
    beside the original one."""
    if any(a in ("-m", "--multirun") or a.startswith(("hydra.run.dir=", "hydra.output_subdir=")) for a in argv):
        return []
    typed = [a.split("=", 1)[1] for a in argv if a.startswith("trainer.resume=")]
    if not typed or not (Path(typed[-1]) / CHECKPOINTS / LAST).is_file():
        return []
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    return [f"hydra.run.dir={typed[-1]}", f"hydra.output_subdir=${{eventkit.on_rank_zero:.hydra/resumed-{stamp}}}"]


# ------------------------------------------------------------------- the task: one run
def _task(cfg: DictConfig) -> float | None:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hydra_cfg = HydraConfig.get()
    run_dir = hydra_cfg.runtime.output_dir
    sweeping = hydra_cfg.mode == RunMode.MULTIRUN
    # the run's log holds what rank 0 prints (the other processes of a launch print nothing on stdout)
    log = runlog.capture(Path(run_dir)) if distributed.is_main_process() else contextlib.nullcontext()
    try:
        with distributed.quiet_unless_main(), log:
            summary = _run_or_stop(cfg, run_dir, list(hydra_cfg.overrides.task), sweeping)
        if summary is None:
            return None
    finally:
        distributed.shutdown()
    # the value an optimising sweeper (Optuna) maximises
    objective = summary["best_val_accuracy"]
    return float(objective if objective is not None else summary["test_accuracy"])


def _run_or_stop(cfg: DictConfig, run_dir: str, explicit: list[str], sweeping: bool) -> dict | None:
    """:func:`run`, with its failure said in one line (inside the run's log): a single run exits,
    a sweep's job returns None and the sweep goes on."""
    try:
        return run(cfg, run_dir, explicit=explicit)
    except KeyboardInterrupt as exc:  # Ctrl-C ends a run and a sweep alike
        say_error(f"eventkit: {exc}" if str(exc) else "eventkit: interrupted")
        sys.exit(INTERRUPTED_EXIT)
    except Exception as exc:
        if not sweeping:
            _stop_single_run(exc)
        # one job's failure is recorded in its run directory; the sweep goes on with the others
        from hydra.core.hydra_config import HydraConfig

        _report_failed_job(exc, HydraConfig.get().job.num)
        return None


def _stop_single_run(exc: Exception) -> None:
    """A single run ends on its first error: one line and exit status 2 for input errors."""
    if not isinstance(exc, USER_ERRORS) or want_traceback():
        raise exc
    if isinstance(exc, ConfigError) and not distributed.is_main_process():
        sys.exit(2)  # the same config error as rank 0's, which says it
    say_error(f"eventkit: error: {exc}")
    print(TRACEBACK_HINT, file=sys.stderr, flush=True)
    sys.exit(2)


def _report_failed_job(exc: Exception, job: Any) -> None:
    """A failed sweep job says why in one line; a bug (not an input error) shows its traceback."""
    if not isinstance(exc, USER_ERRORS) or want_traceback():
        traceback.print_exception(exc, file=sys.stderr)
    say_error(f"eventkit: job {job} failed: {one_line(exc)}")


# ------------------------------------------------------------ --cfg job: the config that runs
def _shows_job_config(argv: Sequence[str]) -> bool:
    """``--cfg job`` (``-c job``) of a single run: eventkit prints the config as it will run (after
    its target adapted it), not Hydra's composed config. Other ``--cfg`` forms stay Hydra's."""
    if any(a in ("-m", "--multirun", "-p", "--package") or a.startswith("--package=") for a in argv):
        return False
    return any(a in ("--cfg", "-c") and argv[i + 1 : i + 2] == ["job"] for i, a in enumerate(argv)) or any(
        a in ("--cfg=job", "-c=job") for a in argv
    )


def _show_config_overrides(argv: Sequence[str]) -> list[str]:
    """The command line without ``--cfg job`` (and ``--resolve``: the config that runs is resolved),
    run as a job that writes nothing: no run directory record, no job log."""
    out, skip = [], False
    for i, a in enumerate(argv):
        if skip:
            skip = False
            continue
        if a in ("--cfg", "-c") and argv[i + 1 : i + 2] == ["job"]:
            skip = True
            continue
        if a in ("--cfg=job", "-c=job", "--resolve"):
            continue
        out.append(a)
    import tempfile

    scratch = tempfile.mkdtemp(prefix="eventkit-cfg-")
    return [
        *out,
        f"hydra.run.dir={scratch}",
        "hydra.output_subdir=null",
        "hydra/job_logging=disabled",
        "hydra/hydra_logging=disabled",
    ]


def _show_config(cfg: DictConfig) -> None:
    """Print the config that will run: validated and adapted by its target, whose changes are
    listed first as YAML comments."""
    import shutil

    from hydra.core.hydra_config import HydraConfig

    hydra_cfg = HydraConfig.get()
    typed = list(hydra_cfg.overrides.task)
    try:
        ran, target, notices = adapted_config(cfg, typed, get_registry())
    except ConfigError as exc:
        _stop_single_run(exc)
    finally:
        shutil.rmtree(hydra_cfg.runtime.output_dir, ignore_errors=True)
    if notices:
        print(f"# target {target.name} adapts the composed config before it runs; this is the config that runs:")
        for notice in notices:
            print(f"#   {notice}")
    print(OmegaConf.to_yaml(ran), end="", flush=True)


# -------------------------------------------------------------- Hydra's errors in one line
#: Hydra reports what it finds wrong while composing the config (before the task runs) itself:
#: several lines, exit status 1. Hydra has no public hook for that report; its documented
#: ``HYDRA_FULL_ERROR=1`` makes it raise the error instead, which eventkit then says in one line
#: with its fix (exit status 2), or, for anything else, as Hydra would (the message of a
#: Hydra error, the traceback of any other). Checked against hydra-core 1.3 (pinned in
#: pyproject.toml) by tests/test_app.py.
HYDRA_RAISES = "HYDRA_FULL_ERROR"


def _run_hydra(task: Callable[[DictConfig], Any], overrides: Sequence[str]) -> None:
    """Hydra's command line (``sys.argv``) with ``task``, its errors said by eventkit."""
    import hydra

    full = want_full_error()  # asked for by the user, before it is set below
    try:
        with _environment(HYDRA_RAISES, "1"):
            hydra.main(config_path=str(conf_dir()), config_name=CONFIG_NAME, version_base=HYDRA_VERSION_BASE)(task)()
    except Exception as exc:
        if full:
            raise
        text = composition_error(exc, overrides)
        if text is not None:
            say_error(f"eventkit: error: {text}")  # no job log yet
            print(TRACEBACK_HINT, file=sys.stderr, flush=True)
            sys.exit(2)
        _report_as_hydra(exc)
        sys.exit(1)


def _report_as_hydra(exc: Exception) -> None:
    """Any other error as Hydra reports it: the message of a Hydra error (and of its OmegaConf
    cause), the traceback of any other without Hydra's own frames."""
    from hydra.errors import CompactHydraException
    from omegaconf.errors import OmegaConfBaseException

    if isinstance(exc, CompactHydraException):
        say_error(str(exc))
        if isinstance(exc.__cause__, OmegaConfBaseException):
            say_error(str(exc.__cause__))
    else:
        import hydra

        inside = str(Path(hydra.__file__).parent)
        shown = traceback.TracebackException.from_exception(exc)
        shown.stack = traceback.StackSummary.from_list([f for f in shown.stack if not f.filename.startswith(inside)])
        print("".join(shown.format()), end="", file=sys.stderr, flush=True)
        return
    print(TRACEBACK_HINT, file=sys.stderr, flush=True)


@contextlib.contextmanager
def _environment(name: str, value: str):
    """``os.environ[name] = value`` while inside, then as it was."""
    before = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before
