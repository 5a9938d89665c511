"""The pipeline of one run: compose -> build components -> train -> evaluate -> checkpoint ->
target.deploy -> report. Every component comes from the registry by name; this module never
names a particular dataset, neuron model or target.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from eventkit.rundir import runlog
from eventkit.training import launch as distributed
from eventkit.rundir.checkpoints import load_checkpoint, model_state
from eventkit.running.config import (
    CONFIG_NAME,
    HYDRA_VERSION_BASE,
    ConfigError,
    conf_dir,
    install_search_path_plugin,
    normalize_overrides,
    resolve,
    validate,
)
from eventkit.data import DatasetSplits
from eventkit.components.loggers import GuardedLogger, NullLogger
from eventkit.base.registry import Registry, get_registry, install_hint
from eventkit.running.report import pct, write_plots_and_report
from eventkit.running.resume import resumed_config
from eventkit.engine.backends import resolve_device
from eventkit.components.networks import NetworkConfig, build_network
from eventkit.rundir.layout import BEST, CHECKPOINTS, LAST, RunDir, check_unused, explain_os_error, mark_continued
from eventkit.rundir.memory import MemoryRunDir
from eventkit.base.schema import from_config, plain
from eventkit.training.loop import (
    SMOKE_BATCHES,
    SMOKE_EPOCHS,
    SMOKE_EVAL,
    NonFiniteLoss,
    TrainerConfig,
    evaluate,
    fit,
    split_validation,
)

TRACEBACK_ENV = "EVENTKIT_TRACEBACK"
#: the one hint every one-line error ends with
TRACEBACK_HINT = f"(set {TRACEBACK_ENV}=1 for the traceback)"
#: failures caused by the input (config, data, divergence): reported as one line, no traceback
USER_ERRORS = (ValueError, NonFiniteLoss, FileNotFoundError, KeyboardInterrupt)
#: exit status of a run stopped by Ctrl-C (128 + SIGINT, as a shell reports it)
INTERRUPTED_EXIT = 130
#: exit status of a sweep in which some jobs failed (each one is recorded in its run directory)
SWEEP_FAILED_EXIT = 3


def load_data(cfg: DictConfig, registry: Registry):
    dataset_cfg = {k: v for k, v in plain(cfg.dataset).items() if k != "augment"}
    splits = registry.build("dataset", dataset_cfg)
    for split in ("train", "test"):
        data = getattr(splits, split)
        if data is None or len(data) == 0:
            raise ConfigError(
                f"dataset: the {split} split of {cfg.dataset.name!r} is empty; "
                f"check the dataset's size keys (e.g. dataset.n_{split})"
            )
        data.validate(f"dataset {cfg.dataset.name!r} {split} split")
    augment = [
        registry.build("augmentation", plain(a), where=f"dataset.augment[{i}]")
        for i, a in enumerate(cfg.dataset.get("augment") or [])
    ]
    # Augmentations with train_only=False change the input representation (e.g. delay lines add
    # channels): every split gets them once, before the network is sized from the data. The
    # others are random perturbations applied to the training set afresh each epoch.
    fixed = [a for a in augment if not getattr(a, "train_only", True)]
    if fixed:
        rng = np.random.default_rng([int(cfg.seed), 104729])
        parts = {}
        for split in ("train", "val", "test"):
            data = getattr(splits, split)
            if data is not None:
                for aug in fixed:
                    data = aug(data, rng)
            parts[split] = data
        splits = DatasetSplits(**parts)
    return splits, [a for a in augment if getattr(a, "train_only", True)]


def _set_threads(threads: int | None) -> int:
    if threads is None:
        threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        import numba

        # numba first: starting its thread pool (an OpenMP layer shares torch's runtime) may reset
        # the calling thread's OpenMP thread count, which torch.set_num_threads then sets again
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    except ImportError:  # pragma: no cover - numba is a dependency
        pass
    torch.set_num_threads(threads)
    return threads


def run(cfg: DictConfig, run_dir: str | Path, explicit: Sequence[str] = ()) -> dict:
    """Run the whole pipeline for a composed config; returns what is written to summary.json.
    ``explicit``: the overrides the user typed (``key=value``), which a target must not adapt.
    A directory holding another run is refused untouched; once the directory is this run's, any
    failure is recorded in it (summary.json status "failed" and the reason) before it propagates.
    With ``trainer.resume=DIR`` the run continues DIR's recorded config (its config_resolved.yaml),
    not ``cfg``: only trainer.resume/epochs/progress/threads come from this call -- the typed ones
    when ``explicit`` is given, else ``cfg``'s values (every other value of ``cfg`` is ignored) --
    and a typed override that changes a recorded value is refused untouched
    (see :func:`eventkit.running.resume.resumed_config`). In a data-parallel run (``trainer.distributed``,
    see :mod:`eventkit.training.parallel`) only rank 0 writes ``run_dir``; every process returns the
    summary (rank 0's with the deploy results)."""
    t_start = time.perf_counter()
    main = distributed.is_main_process()  # in a multi-process launch only rank 0 writes the run dir
    if main:
        check_unused(Path(run_dir), resume=_requested_resume(cfg))
    # trainer.resume: DIR's recorded config; a typed change is refused before anything is written
    cfg = resumed_config(cfg, explicit)
    rd = RunDir(Path(run_dir)) if main else MemoryRunDir(Path(run_dir))
    resume = _requested_resume(cfg)
    if (
        main
        and resume
        and Path(str(resume)).resolve() != rd.path.resolve()
        and (Path(str(resume)) / CHECKPOINTS).is_dir()
    ):
        mark_continued(Path(str(resume)), rd.path)
    try:
        return _pipeline(cfg, rd, explicit, t_start)
    except BaseException as exc:
        explained = explain_failure(exc, rd)
        try:
            rd.record_failure(one_line(explained))
        except OSError:  # a full disk must not hide the error that stopped the run
            pass
        if explained is exc:
            raise
        raise explained from None


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped the run; the message says where and how to resume."""


def explain_failure(exc: BaseException, rd: RunDir) -> BaseException:
    """The error to report for ``exc``: Ctrl-C becomes :class:`RunInterrupted` (which epoch,
    which checkpoint, how to resume); a write that failed for lack of space or permission
    becomes one line naming the path; anything else is returned unchanged."""
    if isinstance(exc, KeyboardInterrupt) and not isinstance(exc, RunInterrupted):
        return RunInterrupted(_interrupted_message(rd))
    if isinstance(exc, OSError) and not isinstance(exc, USER_ERRORS):
        return explain_os_error(exc, rd.path) or exc
    return exc


def _interrupted_message(rd: RunDir) -> str:
    stage, done = rd.current_stage, len(rd.metrics)
    last = rd.checkpoints / LAST
    where = f"at epoch {done + 1}" if stage == "train" else f"during {stage or 'setup'}"
    if stage in ("data", "build", None) or not last.is_file():
        return f"interrupted {where}; no epoch had completed, so there is no checkpoint to resume from"
    return (
        f"interrupted {where}; the last checkpoint is {last}; resume with: python -m eventkit trainer.resume={rd.path}"
    )


def _requested_resume(cfg: DictConfig) -> Any:
    """``trainer.resume`` as typed, before validation (which may be what fails)."""
    try:
        return OmegaConf.select(cfg, "trainer.resume", default=None, throw_on_missing=False)
    except Exception:
        return None


def one_line(exc: BaseException) -> str:
    """The failure as summary.json and the sweep table show it: the message's first line, after
    the exception's type when it is not an input error (then it is a bug or an interrupt)."""
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else ""
    if isinstance(exc, USER_ERRORS) and text:
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _pipeline(cfg: DictConfig, rd: RunDir, explicit: Sequence[str], t_start: float) -> dict:
    registry = get_registry()
    cfg, target, notices = adapted_config(cfg, explicit, registry)
    for notice in notices:
        _print(f"eventkit: NOTICE {notice}")
    dp = distributed.setup(cfg)  # None unless trainer.distributed
    seed = int(cfg.seed)
    rd.write_config(OmegaConf.to_yaml(cfg))
    rd.start_manifest(seed, [{"name": p.name, "provider": p.provider, "error": p.error} for p in registry.plugins])
    trainer = from_config(TrainerConfig, cfg.trainer, "trainer")
    network = from_config(NetworkConfig, cfg.network, "network")
    threads = _set_threads(trainer.threads if dp is None else dp.threads(trainer.threads))
    # Adam squares tiny gradients; denormal floats would make each optimizer step ~100x slower
    torch.set_flush_denormal(True)
    torch.manual_seed(seed)

    external = registry.build("logger", plain(cfg.logger)) if dp is None or dp.is_main else NullLogger()
    logger = GuardedLogger(external, cfg.logger.name, rd.record_logger_error)

    with rd.stage("data"):
        splits, augment = load_data(cfg, registry)
        train, val = splits.train, splits.val
        if val is None:
            try:
                train, val = split_validation(train, trainer.val_fraction, seed)
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
        test = splits.test
        if trainer.smoke:
            train, val, test = _smoke_data(train, val, test, trainer, seed)
            splits = DatasetSplits(train=train, val=val, test=test)
    with rd.stage("build"):
        backend = resolve_device(trainer.device)
        net = build_network(
            network,
            {"neuron": plain(cfg.neuron), "readout": plain(cfg.readout)},
            registry,
            train,
            seed,
            backend=backend,
        )
        if backend == "cuda" and torch.cuda.is_available():  # parameters live on the GPU (numba's simulator: host)
            net.to("cuda")
        try:  # before training: can the target run this network on this data?
            target.check(net, train)
        except ValueError as exc:
            raise ConfigError(f"target {target.name!r}: {exc}") from None
        prepare = getattr(target, "prepare", None)  # optional: e.g. quantisation-aware training
        if prepare is not None:
            prepare(net)
        loss_fn = registry.build("loss", plain(cfg.loss))
        # learnable delays get their own (unscheduled) learning rate, network.delay_lr
        optimizer = registry.build("optimizer", plain(cfg.optimizer), net.param_groups(network.delay_lr))
        scheduler = registry.build("scheduler", plain(cfg.scheduler), optimizer)
    logger.start(rd.path, OmegaConf.to_container(cfg))
    resume = Path(trainer.resume) if trainer.resume else None
    _print(
        f"eventkit: {cfg.dataset.name} ({len(train)} train / {len(val) if val is not None else 0} val / "
        f"{len(splits.test)} test, {train.n_channels} inputs, {train.n_steps} steps of {train.dt} ms) -> "
        f"hidden {net.hidden} {cfg.neuron.name} -> {net.n_out} {net.output.name}, "
        f"readout {cfg.readout.name}; {threads} threads"
        f"{f' in each of {dp.world_size} processes' if dp is not None else ''}; run dir {rd.path}"
    )
    with rd.stage("train"):
        result = fit(
            net,
            train,
            val,
            loop=trainer,
            regularizer=network.regularizer,
            seed=seed,
            loss_fn=loss_fn,
            optimizer=optimizer,
            scheduler=scheduler,
            augmentations=augment,
            rundir=rd,
            logger=logger,
            resume=resume,
            dp=dp,
        )
    with rd.stage("evaluate"):
        last = evaluate(net, splits.test, loss_fn, trainer.eval_batch_size, dp)
        best_epoch = _load_best(net, rd, dp)
        best = last if best_epoch == result.epochs else evaluate(net, splits.test, loss_fn, trainer.eval_batch_size, dp)
    summary = {
        "status": "ok",
        "test_accuracy": best["accuracy"],
        "test_loss": best["loss"],
        "last_test_accuracy": last["accuracy"],
        "best_val_accuracy": result.best_val_accuracy,
        "best_epoch": result.best_epoch,
        "epochs": result.epochs,
        "test_spikes_per_sample": best["spikes_per_sample"],
        "seed": seed,
        "resumed_from": result.resumed_from,
    }
    if notices:
        summary["notices"] = notices
    if dp is not None and not dp.is_main:  # rank 0 deploys, reports and writes the summary
        dp.barrier()  # and the run ends for all processes when it has
        return summary
    net.cpu()  # targets export and report from host memory (the cuda backend also runs host parameters)
    with rd.stage("deploy"):
        deployed = target.deploy(net, splits, rd.path)
        summary["deploy"] = {target.name: deployed}
    with rd.stage("report"):
        write_plots_and_report(rd, net, splits.test, summary, cfg)
    summary["wall_time_s"] = round(time.perf_counter() - t_start, 2)
    summary["train_time_s"] = rd._manifest["stages_s"].get("train")
    rd.write_summary(summary)
    rd.finish_manifest()
    logger.log({"test_accuracy": summary["test_accuracy"], "last_test_accuracy": last["accuracy"]}, result.epochs)
    logger.finish(summary)
    _print(one_screen_summary(summary, rd.path))
    if dp is not None:
        dp.barrier()
    return summary


def _load_best(net, rd: RunDir, dp) -> int | None:
    """Load the best checkpoint's weights into ``net`` (rank 0 reads the file, the other processes
    receive its weights) and return its epoch."""
    epoch = None
    if dp is None or dp.is_main:
        tensors, meta = load_checkpoint(rd.checkpoints / BEST)
        net.load_state_dict(model_state(tensors))
        epoch = meta.get("epoch")
    if dp is not None:
        epoch = dp.broadcast_object(epoch)
        dp.broadcast_module(net)
    return epoch


def one_screen_summary(summary: dict, run_dir: Path) -> str:
    lines = [
        "",
        "==== eventkit run summary ====",
        f"test accuracy      {pct(summary['test_accuracy'])}   (best-val epoch {summary['best_epoch']}; "
        f"last epoch {pct(summary['last_test_accuracy'])})",
        f"best val accuracy  {pct(summary['best_val_accuracy'])}",
        f"epochs             {summary['epochs']}",
        f"wall time          {summary.get('wall_time_s', 0):.1f} s (training {summary.get('train_time_s') or 0:.1f} s)",
    ]
    for name, fields in (summary.get("deploy") or {}).items():
        simple = [(k, v) for k, v in fields.items() if isinstance(v, (int, float, str)) and not isinstance(v, bool)]
        shown = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in simple[:6])
        more = f" (+{len(simple) - 6} more in summary.json)" if len(simple) > 6 else ""
        lines.append(f"deploy [{name}]      {shown}{more}")
    lines += [f"run directory      {run_dir}", f"report             {Path(run_dir) / 'report.md'}", ""]
    return "\n".join(lines)


def _print(text: str) -> None:
    """A line on stdout (a run's log, eventkit.log, copies it: :mod:`eventkit.rundir.runlog`)."""
    print(text, flush=True)


def _say_error(text: str) -> None:
    """One line on stderr (and in the run's log)."""
    print(text, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------- CLI
def _want_traceback() -> bool:
    if os.environ.get(TRACEBACK_ENV, "") not in ("", "0", "false"):
        return True
    try:
        from hydra.core.hydra_config import HydraConfig

        return bool(HydraConfig.get().verbose)
    except Exception:
        return False


def adapted_config(cfg: DictConfig, explicit: Sequence[str], registry: Registry) -> tuple[DictConfig, Any, list[str]]:
    """The config that runs: ``cfg`` validated, then changed by its target where the target cannot
    run a value (its optional ``adapt``), and validated again. Returns (config, target, notices).
    A config with problems raises one :class:`ConfigError` holding every problem that validation
    and the target found, so that all of them are fixed in one go."""
    problems: list[str] = []
    try:
        checked = validate(cfg, registry)
    except ConfigError as exc:
        problems += exc.problems
        try:  # the target still looks at the config, so its problems are reported too
            checked = resolve(cfg)
        except ConfigError:
            raise exc from None
    try:
        target = registry.build("target", plain(checked.target))
    except ValueError as exc:
        raise ConfigError(*problems, str(exc)) from None
    adapt = getattr(target, "adapt", None)
    notices: list[str] = []
    if adapt is not None:
        try:
            with open_dict(checked):
                notices = list(adapt(checked, list(explicit)) or [])
        except ValueError as exc:
            found = exc.problems if isinstance(exc, ConfigError) else (str(exc),)
            problems += [f"target {target.name!r}: {p}" for p in found]
    if problems:
        raise ConfigError(*problems)
    notices = [f"target {target.name}: {n}" for n in notices] + _smoke(checked)
    return (validate(checked, registry) if notices else checked), target, notices


def _smoke(cfg: DictConfig) -> list[str]:
    """``trainer.smoke=true``: cut any recipe to a seconds-long end-to-end check (see
    :data:`eventkit.training.loop.SMOKE_EPOCHS`); the recorded config holds what ran. Returns notices."""
    if cfg.trainer.get("smoke") is not True:
        return []
    with open_dict(cfg):
        epochs = min(int(cfg.trainer.epochs), SMOKE_EPOCHS)
        cfg.trainer.epochs, cfg.trainer.patience = epochs, None
        scheduler = cfg.scheduler.name
        cfg.scheduler = {"name": "constant"}
    return [
        f"trainer.smoke: {epochs} epochs of at most {SMOKE_BATCHES} batches, validation and test on at most "
        f"{SMOKE_EVAL} samples, lr {cfg.optimizer.get('lr')} constant (scheduler {scheduler} not used), "
        "no early stop: a check that the recipe runs, not a result"
    ]


def _smoke_data(train, val, test, trainer: TrainerConfig, seed: int):
    """The smoke run's samples: seeded random subsets of each split."""
    rng = np.random.default_rng([seed, 7919])

    def cut(data, n):
        if data is None or len(data) <= n:
            return data
        return data.subset(np.sort(rng.choice(len(data), size=n, replace=False)))

    return cut(train, SMOKE_BATCHES * trainer.batch_size), cut(val, SMOKE_EVAL), cut(test, SMOKE_EVAL)


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
        _say_error(f"eventkit: {exc}" if str(exc) else "eventkit: interrupted")
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
    if not isinstance(exc, USER_ERRORS) or _want_traceback():
        raise exc
    if isinstance(exc, ConfigError) and not distributed.is_main_process():
        sys.exit(2)  # the same config error as rank 0's, which says it
    _say_error(f"eventkit: error: {exc}")
    print(TRACEBACK_HINT, file=sys.stderr, flush=True)
    sys.exit(2)


def _report_failed_job(exc: Exception, job: Any) -> None:
    """A failed sweep job says why in one line; a bug (not an input error) shows its traceback."""
    if not isinstance(exc, USER_ERRORS) or _want_traceback():
        traceback.print_exception(exc, file=sys.stderr)
    _say_error(f"eventkit: job {job} failed: {one_line(exc)}")


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


def main(argv: list[str] | None = None) -> int:
    """``python -m eventkit [overrides]``: Hydra's CLI plus ``--plugins``. Exit status 2: the run
    failed on its input; 3: a sweep finished but some of its jobs failed."""
    import hydra

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
    with _composition_errors_in_one_line(sys.argv[1:]):
        hydra.main(config_path=str(conf_dir()), config_name=CONFIG_NAME, version_base=HYDRA_VERSION_BASE)(task)()
    return SWEEP_FAILED_EXIT if sweep.LAST_FAILED else 0


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
        new = f"+{key}={value}"  # a key the config does not have yet
        fix = f"{base + '.' if base else ''}{fix}={value} (or, for a new key, {new})" if fix else f"add it: {new}"
        return f"{key}: no such key; known: {', '.join(known) or '(none)'}. Fix: {fix}"
    return None


@contextlib.contextmanager
def _composition_errors_in_one_line(overrides: Sequence[str]):
    """Hydra reports errors found while composing (before the task runs) itself, in several
    lines and with exit status 1; eventkit's one-line format and exit status 2 instead (unless a
    traceback is asked for)."""
    import hydra._internal.utils as hydra_utils

    original = hydra_utils.run_and_report

    def one_line_first(func):
        def call():
            try:
                return func()
            except Exception as exc:
                text = None if _want_full_error() else composition_error(exc, overrides)
                if text is None:
                    raise
                print(f"eventkit: error: {text}", file=sys.stderr, flush=True)  # no job log yet
                print(TRACEBACK_HINT, file=sys.stderr, flush=True)
                sys.exit(2)

        return original(call)

    hydra_utils.run_and_report = one_line_first
    try:
        yield
    finally:
        hydra_utils.run_and_report = original


def _want_full_error() -> bool:
    return any(os.environ.get(name, "") not in ("", "0", "false") for name in (TRACEBACK_ENV, "HYDRA_FULL_ERROR"))
