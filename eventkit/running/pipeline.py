"""One run: compose -> build components -> train -> evaluate -> checkpoint -> target.deploy ->
report (:func:`run`, whose steps are the functions below it). Every component comes from the
registry by name; this module never names a particular dataset, neuron model or target.
The command line around it is :mod:`eventkit.running.cli`.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from eventkit.base import reproducible
from eventkit.base.registry import Registry, get_registry
from eventkit.base.schema import from_config, plain
from eventkit.components.loggers import GuardedLogger, NullLogger
from eventkit.components.networks import NetworkConfig, adaptable_delays, build_network
from eventkit.components.targets import as_target
from eventkit.data import DatasetSplits
from eventkit.engine.backends import resolve_device
from eventkit.rundir.checkpoints import load_checkpoint, model_state
from eventkit.rundir.layout import BEST, CHECKPOINTS, RunDir, check_unused, mark_continued, set_aside_notice
from eventkit.running.config import ConfigError, resolve, validate
from eventkit.running.failures import explain_failure, one_line
from eventkit.running.report import pct, write_plots_and_report
from eventkit.running.resume import resumed_config
from eventkit.rundir.memory import MemoryRunDir
from eventkit.training import launch as distributed
from eventkit.training.loop import (
    SMOKE_BATCHES,
    SMOKE_EPOCHS,
    SMOKE_EVAL,
    TrainerConfig,
    evaluate,
    fit,
    split_validation,
)


def load_data(cfg: DictConfig, registry: Registry):
    """The config's dataset (every split checked non-empty and valid) with the augmentations that
    change the input representation applied to every split; returns (splits, the augmentations
    applied to the training set afresh each epoch)."""
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
    A directory holding another run is refused untouched (one whose run failed before its first
    epoch is taken, that run's record kept in ``.failed-<time>/`` inside it:
    :func:`eventkit.rundir.layout.check_unused`); once the directory is this run's, any
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
        aside = check_unused(Path(run_dir), resume=_requested_resume(cfg))
        if aside is not None:  # a run that failed before its first epoch: kept in aside
            _print(f"eventkit: NOTICE {set_aside_notice(aside)}")
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


def _requested_resume(cfg: DictConfig) -> Any:
    """``trainer.resume`` as typed, before validation (which may be what fails)."""
    try:
        return OmegaConf.select(cfg, "trainer.resume", default=None, throw_on_missing=False)
    except Exception:
        return None


def _pipeline(cfg: DictConfig, rd: RunDir, explicit: Sequence[str], t_start: float) -> dict:
    """The run's steps, each a stage timed in manifest.json."""
    run = _setup(cfg, rd, explicit)
    with rd.stage("data"):
        splits, train, val, augment = _data(run)
    with rd.stage("build"):
        built = _build(run, train)
    run.logger.start(rd.path, OmegaConf.to_container(run.cfg))
    _print(_describe(run, splits, train, val, built.net, rd))
    with rd.stage("train"):
        result = _train(run, built, train, val, augment, rd)
    with rd.stage("evaluate"):
        best, last = _evaluate(run, built, splits.test, rd, result.epochs)
    summary = _summary(run, best, last, result)
    if run.dp is not None and not run.dp.is_main:  # rank 0 deploys, reports and writes the summary
        run.dp.barrier()  # and the run ends for all processes when it has
        return summary
    _deploy_and_report(run, built.net, splits, summary, rd)
    _finish(run, summary, last, result.epochs, rd, t_start)
    return summary


@dataclass
class _Run:
    """What every step of one run reads: the config that runs and what was made from it."""

    cfg: DictConfig
    registry: Registry
    target: Any
    notices: list[str]
    dp: Any  # eventkit.training.parallel.DataParallel, None in a single process
    seed: int
    trainer: TrainerConfig
    network: NetworkConfig
    threads: int
    logger: GuardedLogger


@dataclass
class _Built:
    net: Any
    loss_fn: Any
    optimizer: Any
    scheduler: Any


def _setup(cfg: DictConfig, rd: RunDir, explicit: Sequence[str]) -> _Run:
    """The config that runs (adapted by its target), recorded in the run directory; the process's
    threads and seed; the external logger."""
    registry = get_registry()
    cfg, target, notices = adapted_config(cfg, explicit, registry)
    host = reproducible.host_notice(cfg.trainer.get("reproducible"))
    notices = [*notices, host] if host else notices
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
    return _Run(cfg, registry, target, notices, dp, seed, trainer, network, threads, logger)


def _data(run: _Run):
    """The dataset's splits, the training and validation data (validation split off the training
    set when the dataset has none), and the augmentations applied to each training epoch."""
    trainer, seed = run.trainer, run.seed
    splits, augment = load_data(run.cfg, run.registry)
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
    return splits, train, val, augment


def _build(run: _Run, train) -> _Built:
    """The network (sized from the training data, checked by the target), its loss, optimizer
    and learning-rate schedule."""
    cfg, registry, network, target = run.cfg, run.registry, run.network, run.target
    backend = resolve_device(run.trainer.device)
    net = build_network(
        network,
        {"neuron": plain(cfg.neuron), "readout": plain(cfg.readout)},
        registry,
        train,
        run.seed,
        backend=backend,
    )
    if backend == "cuda" and torch.cuda.is_available():  # parameters live on the GPU (numba's simulator: host)
        net.to("cuda")
    try:  # before training: can the target run this network on this data?
        target.check(net, train)
    except ValueError as exc:
        raise ConfigError(f"target {target.name!r}: {exc}") from None
    target.prepare(net)  # e.g. quantisation-aware training
    loss_fn = registry.build("loss", plain(cfg.loss))
    # learnable delays get their own (unscheduled) learning rate, network.delay_lr
    optimizer = registry.build("optimizer", plain(cfg.optimizer), net.param_groups(network.delay_lr, network.tau_lr))
    scheduler = registry.build("scheduler", plain(cfg.scheduler), optimizer)
    return _Built(net, loss_fn, optimizer, scheduler)


def _describe(run: _Run, splits: DatasetSplits, train, val, net, rd: RunDir) -> str:
    """The one line that says what this run trains, on what, and where it writes."""
    cfg, dp = run.cfg, run.dp
    return (
        f"eventkit: {cfg.dataset.name} ({len(train)} train / {len(val) if val is not None else 0} val / "
        f"{len(splits.test)} test, {train.n_channels} inputs, {train.n_steps} steps of {train.dt} ms) -> "
        f"hidden {net.hidden} {cfg.neuron.name} -> {net.n_out} {net.output.name}, "
        f"readout {cfg.readout.name}; {run.threads} threads"
        f"{f' in each of {dp.world_size} processes' if dp is not None else ''}; run dir {rd.path}"
    )


def _train(run: _Run, built: _Built, train, val, augment, rd: RunDir):
    trainer = run.trainer
    return fit(
        built.net,
        train,
        val,
        loop=trainer,
        regularizer=run.network.regularizer,
        seed=run.seed,
        loss_fn=built.loss_fn,
        optimizer=built.optimizer,
        scheduler=built.scheduler,
        augmentations=augment,
        rundir=rd,
        logger=run.logger,
        resume=Path(trainer.resume) if trainer.resume else None,
        dp=run.dp,
    )


def _evaluate(run: _Run, built: _Built, test, rd: RunDir, epochs: int) -> tuple[dict, dict]:
    """The test results of the best checkpoint (by validation accuracy) and of the last epoch;
    ``built.net`` holds the best checkpoint's weights afterwards."""
    net, loss_fn, batch_size, dp = built.net, built.loss_fn, run.trainer.eval_batch_size, run.dp
    last = evaluate(net, test, loss_fn, batch_size, dp)
    best_epoch = _load_best(net, rd, dp)
    best = last if best_epoch == epochs else evaluate(net, test, loss_fn, batch_size, dp)
    return best, last


def _summary(run: _Run, best: dict, last: dict, result) -> dict:
    summary = {
        "status": "ok",
        "test_accuracy": best["accuracy"],
        "test_loss": best["loss"],
        "last_test_accuracy": last["accuracy"],
        "best_val_accuracy": result.best_val_accuracy,
        "best_epoch": result.best_epoch,
        "epochs": result.epochs,
        "test_spikes_per_sample": best["spikes_per_sample"],
        "seed": run.seed,
        "resumed_from": result.resumed_from,
    }
    if run.notices:
        summary["notices"] = run.notices
    return summary


def _deploy_and_report(run: _Run, net, splits: DatasetSplits, summary: dict, rd: RunDir) -> None:
    """Rank 0: the target deploys the trained network; report.md and the plots are written."""
    target = run.target
    net.cpu()  # targets export and report from host memory (the cuda backend also runs host parameters)
    with rd.stage("deploy"):
        deployed = target.deploy(net, splits, rd.path)
        summary["deploy"] = {target.name: deployed}
    with rd.stage("report"):
        write_plots_and_report(rd, net, splits.test, summary, run.cfg)


def _finish(run: _Run, summary: dict, last: dict, epochs: int, rd: RunDir, t_start: float) -> None:
    """Rank 0: summary.json and the manifest's end, the logger's last values, the one-screen summary."""
    summary["wall_time_s"] = round(time.perf_counter() - t_start, 2)
    summary["train_time_s"] = rd.stage_seconds("train")
    rd.write_summary(summary)
    rd.finish_manifest()
    run.logger.log({"test_accuracy": summary["test_accuracy"], "last_test_accuracy": last["accuracy"]}, epochs)
    run.logger.finish(summary)
    _print(one_screen_summary(summary, rd.path))
    if run.dp is not None:
        run.dp.barrier()


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


def adapted_config(cfg: DictConfig, explicit: Sequence[str], registry: Registry) -> tuple[DictConfig, Any, list[str]]:
    """The config that runs: ``cfg`` validated, then changed by its target where the target cannot
    run a value (its ``adapt``), and validated again. Returns (config, target, notices).
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
        target = as_target(registry.build("target", plain(checked.target)), checked.target.name)
    except ValueError as exc:
        raise ConfigError(*problems, str(exc)) from None
    notices: list[str] = []
    try:
        with open_dict(checked):
            notices = list(target.adapt(checked, list(explicit), adaptable_delays(checked.network)))
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
