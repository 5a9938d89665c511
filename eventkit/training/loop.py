"""The training loop: epochs of mini-batches, validation, best-checkpoint selection, resume.

Everything random in an epoch (augmentation, shuffling) is drawn from generators seeded by
``(seed, epoch)``, and the full optimizer/schedule state is checkpointed after every epoch. So a
run is determined by its config and seed, and a resumed run continues exactly where the killed
one stopped: at most the epoch in flight is lost.
"""

from __future__ import annotations

import math
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np
import torch

from eventkit.base import reproducible
from eventkit.base.schema import setting
from eventkit.components.networks import RegularizerConfig
from eventkit.data import SpikeData
from eventkit.rundir import runlog
from eventkit.rundir.checkpoints import (
    load_checkpoint,
    model_state,
    model_tensors,
    optimizer_from_flat,
    optimizer_to_flat,
    save_checkpoint,
)
from eventkit.rundir.layout import BEST, LAST, DelayMetricKeys, RunDir, read_metrics
from eventkit.training.parallel import DataParallel
from eventkit.training.step import LossFn, Objective, Step, StepResult

if TYPE_CHECKING:
    from eventkit.components.loggers import Logger
    from eventkit.components.schedules import Schedule
    from eventkit.engine import EventpropNet

#: a per-epoch augmentation: (data, generator) -> new data
Augmentation = Callable[[SpikeData, np.random.Generator], SpikeData]


class NonFiniteLoss(RuntimeError):
    """The loss or a gradient became NaN/inf; training stopped, the last good checkpoint is kept."""


#: ``trainer.smoke=true``: what a smoke run keeps of a recipe -- at most this many epochs of this
#: many batches, validation and test on at most SMOKE_EVAL samples each (a seeded random subset,
#: so that every class can appear), the optimizer's lr held constant (a recipe's warm-up would
#: start near 0 and learn nothing in a few batches) and no early stop
SMOKE_EPOCHS, SMOKE_BATCHES, SMOKE_EVAL = 2, 4, 256


@dataclass(frozen=True)
class TrainerConfig:
    """The ``trainer`` config group: the training loop's own arguments, and their schema
    (conf/trainer/default.yaml holds the defaults)."""

    epochs: int = setting(ge=1, example=30)
    batch_size: int = setting(ge=1, example=32)
    eval_batch_size: int = setting(ge=1, example=256)
    val_fraction: float = setting(ge=0, lt=1, example=0.1)  # held out when the dataset has no val split
    grad_clip: float | None = setting(gt=0, example=1.0)  # max global gradient norm of the weights
    silent_fix: float = setting(ge=0, example=0.002)  # added to the input weights of silent neurons
    threads: int | None = setting(ge=1, example=2)  # engine worker threads (None: all cores)
    resume: str | None = setting(example="outputs/<date>/<time>")  # a run dir to continue
    progress: bool = setting(example="false")
    patience: int | None = setting(None, ge=1, example=15)  # early stop after epochs without a better val
    device: str = setting("cpu", example="cpu")  # engine backend: cpu, cuda or auto (cuda when present)
    distributed: bool = setting(False, example="true")  # data-parallel over torchrun/submitit processes
    smoke: bool = setting(False, example="true")  # a seconds-long check that a recipe runs end to end (SMOKE)
    # strict | fast (eventkit/base/reproducible.py); None: the mode this process was started in
    reproducible: str | None = setting(None, example="strict")

    def __post_init__(self):
        from eventkit.engine.backends import DEVICES, resolve_device

        if self.reproducible is None:
            object.__setattr__(self, "reproducible", reproducible.mode())
        reproducible.check(self.reproducible)  # the process's mode, set before its libraries started

        if self.device not in DEVICES:
            raise ValueError(f"device: must be cpu, cuda or auto, got {self.device!r}. Fix: trainer.device=cpu")
        resolve_device(self.device)  # cuda where it cannot run: one line with the fix, before data loads
        if self.resume is not None:
            from eventkit.rundir.layout import CHECKPOINTS

            if not (Path(self.resume) / CHECKPOINTS / LAST).is_file():
                raise ValueError(
                    f"resume: {self.resume} is not a run directory with a {CHECKPOINTS}/{LAST} "
                    "checkpoint. Fix: trainer.resume=outputs/<date>/<time> of a run that finished "
                    "at least one epoch"
                )


@dataclass
class FitResult:
    epochs: int  # epochs completed in total (including resumed ones)
    best_epoch: int | None  # 1-based epoch of the selected weights
    best_val_accuracy: float | None
    metrics: list[dict] = field(default_factory=list)
    resumed_from: str | None = None


def split_validation(train: SpikeData, fraction: float, seed: int) -> tuple[SpikeData, SpikeData | None]:
    """Hold out ``fraction`` of ``train`` (seeded permutation) when the dataset has no val split."""
    if fraction <= 0:
        return train, None
    n_val = int(round(len(train) * fraction))
    if n_val < 1 or n_val >= len(train):
        raise ValueError(
            f"trainer.val_fraction={fraction} leaves {n_val} of {len(train)} samples for "
            f"validation; choose a fraction giving at least one sample on each side"
        )
    perm = np.random.default_rng([seed, 7919]).permutation(len(train))
    return train.subset(np.sort(perm[n_val:])), train.subset(np.sort(perm[:n_val]))


def _batches(n: int, size: int, order: np.ndarray | None = None):
    idx = np.arange(n) if order is None else order
    for start in range(0, n, size):
        yield idx[start : start + size]


@torch.no_grad()
def evaluate(
    net: EventpropNet, data: SpikeData, loss_fn: LossFn, batch_size: int, dp: DataParallel | None = None
) -> dict:
    """Loss, accuracy and mean hidden spike count per sample over ``data``. Each process of the
    data-parallel group ``dp`` (None: this process alone) evaluates its share of the batches and
    the sums are combined, so every process returns the whole set's figures."""
    if len(data) == 0:
        raise ValueError("cannot evaluate on an empty data set")
    dp = dp if dp is not None else DataParallel()
    n_batches = math.ceil(len(data) / batch_size)
    per_batch = np.zeros((n_batches, 3))  # loss x size, correct, spikes
    for b, idx in enumerate(_batches(len(data), batch_size)):
        if not dp.owns_batch(b):
            continue
        batch = data.subset(idx)
        out = net(batch)
        labels = torch.from_numpy(batch.labels).to(out.readout.device)
        per_batch[b] = (
            float(loss_fn(out.readout, labels)) * len(idx),
            int((net.predict(out.readout) == labels).sum()),
            float(out.counts.sum()),
        )
    # each batch's figures from the process that evaluated it (x + 0 is exact)
    per_batch = dp.sum(torch.from_numpy(per_batch)).cpu().numpy()
    total_loss, correct, spikes = 0.0, 0, 0.0
    for batch_loss, batch_correct, batch_spikes in per_batch:  # in batch order, as one process adds
        total_loss += float(batch_loss)
        correct += int(batch_correct)
        spikes += float(batch_spikes)
    n = len(data)
    return {"loss": total_loss / n, "accuracy": correct / n, "spikes_per_sample": spikes / n}


def delay_stats(net: EventpropNet) -> dict[str, float]:
    """Mean and standard deviation (ms) of each delayed connection's delays, keyed
    ``<connection>_delay_mean_ms`` / ``..._std_ms``: a metrics row's view of what delays learn."""
    stats, delays = {}, net.delays_ms()
    for conn in net.topology.delayed:
        keys = DelayMetricKeys.of(conn)
        stats[keys.mean] = float(delays[conn.name].mean())
        stats[keys.std] = float(delays[conn.name].std())
    return stats


def _silent_fix(net: EventpropNet, epoch_counts: torch.Tensor, amount: float) -> int:
    """Neurons that never fired during the epoch get ``amount`` added to all their input
    weights (the authors' remedy: a silent neuron gets no gradient, so it would stay silent)."""
    if amount <= 0:
        return 0
    start, fixed = {}, 0
    for pop in net.topology.hidden:  # counts are concatenated in population order
        start[pop.index] = sum(p.size for p in net.topology.hidden if p.index < pop.index)
    with torch.no_grad():
        for conn in net.topology.connections:
            if conn.kind != "ff":
                continue
            a = start[conn.post.index]
            silent = epoch_counts[a : a + conn.post.size] == 0
            if silent.any():
                getattr(net, conn.name)[silent] += amount
                fixed += int(silent.sum())
    return fixed


def _state_tensors(net, optimizer) -> tuple[dict, dict]:
    tensors = model_tensors(net)
    opt_tensors, opt_meta = optimizer_to_flat(optimizer)
    tensors.update(opt_tensors)
    return tensors, opt_meta


def fit(
    net: EventpropNet,
    train: SpikeData,
    val: SpikeData | None,
    *,
    loop: TrainerConfig,
    regularizer: RegularizerConfig,
    seed: int,
    loss_fn: LossFn,
    optimizer: torch.optim.Optimizer,
    scheduler: Schedule,
    augmentations: Sequence[Augmentation],
    rundir: RunDir,
    logger: Logger,
    resume: Path | None = None,
    dp: DataParallel | None = None,
) -> FitResult:
    """Train ``net`` for ``loop.epochs`` epochs. ``net`` keeps the last weights; the best ones (by
    validation accuracy; the last ones when there is no validation set) are in checkpoints/best.
    Every step is :class:`eventkit.training.step.Step` in the data-parallel group ``dp`` (None:
    this process alone, a group of one): each process simulates its share of each global batch,
    every process gets the whole batch's loss and gradient, the epoch's counts are summed over
    processes, and only rank 0 writes checkpoints."""
    if len(train) == 0:
        raise ValueError("the training set is empty; check the dataset config (e.g. dataset.n_train)")
    if val is not None and len(val) == 0:
        val = None
    dp = dp if dp is not None else DataParallel()
    dp.check_groups(net, loop.batch_size)
    reproducible.apply_torch()
    state = _FitState(net, val, loop, loss_fn, optimizer, scheduler, rundir, logger, dp)
    if resume is not None:
        state.resume_from(Path(resume))
    step = Step(net, Objective(loss_fn, regularizer), optimizer, scheduler, dp, loop.grad_clip)
    epochs = _bar(
        range(state.start_epoch, loop.epochs),
        loop.progress,
        desc="epochs",
        initial=state.start_epoch,
        total=loop.epochs,
        unit="ep",
    )
    for epoch in epochs:
        t0 = time.perf_counter()
        tally = _train_epoch(step, train, augmentations, seed, epoch, loop, rundir.checkpoints)
        row = state.end_epoch(epoch, tally, train.n_steps * train.dt / 1000.0)
        row["epoch_time_s"] = round(time.perf_counter() - t0, 3)
        state.record(epoch, row, epochs)
        if state.stops_early(epoch):
            break
    return state.result()


@dataclass
class _Tally:
    """An epoch's training figures: the loss summed over samples (each batch's mean loss times
    its size), correct predictions, samples, and each hidden neuron's spike count."""

    counts: torch.Tensor
    loss_sum: float = 0.0
    correct: int = 0
    seen: int = 0

    def add(self, result: StepResult, net: EventpropNet) -> None:
        with torch.no_grad():
            if result.out is not None:  # None: this process's share of a short last batch was empty
                self.counts += result.out.counts.detach().sum(0)
                self.correct += int((net.predict(result.out.readout.detach()) == result.labels).sum())
        self.loss_sum += float(result.loss.detach()) * result.size
        self.seen += result.size

    def summed(self, dp: DataParallel) -> _Tally:
        """The whole group's correct predictions and counts (integers: exact in any order); the
        loss and the samples are the whole batches' on every process already."""
        device = self.counts.device
        summed = dp.sum(
            torch.cat([torch.tensor([self.correct], dtype=torch.float64, device=device), self.counts.to(torch.float64)])
        )
        counts = summed[1:].to(device=device, dtype=self.counts.dtype)
        return _Tally(counts, self.loss_sum, int(summed[0]), self.seen)

    def postfix(self) -> dict:
        return {"loss": f"{self.loss_sum / max(self.seen, 1):.4f}", "acc": f"{self.correct / max(self.seen, 1):.3f}"}


def _train_epoch(
    step: Step,
    train: SpikeData,
    augmentations: Sequence[Augmentation],
    seed: int,
    epoch: int,
    loop: TrainerConfig,
    ckpt_dir: Path,
) -> _Tally:
    """One epoch of steps: the augmentations and the batch order drawn from ``(seed, epoch)``;
    returns the epoch's figures summed over the group."""
    rng = np.random.default_rng([seed, epoch])
    data = train
    for aug in augmentations:
        data = aug(data, rng)
    order = rng.permutation(len(data))
    net = step.net
    tally = _Tally(torch.zeros(net.n_hidden_total, device=next(net.parameters()).device))
    batches = _bar(
        _batches(len(data), loop.batch_size, order),
        loop.progress,
        total=math.ceil(len(data) / loop.batch_size),
        desc=f"epoch {epoch + 1}/{loop.epochs}",
        leave=False,
        unit="batch",
    )
    for b, idx in enumerate(batches):
        tally.add(step(data, idx, lambda what: _non_finite(what, epoch, b, ckpt_dir)), net)  # noqa: B023 - called at once
        if loop.progress:
            batches.set_postfix(**tally.postfix(), refresh=False)
    return tally.summed(step.dp)


@dataclass
class _FitState:
    """What :func:`fit` keeps across epochs: what it trains with, where it started, the best
    validation accuracy so far, and where each epoch's records go."""

    net: EventpropNet
    val: SpikeData | None
    loop: TrainerConfig
    loss_fn: LossFn
    optimizer: torch.optim.Optimizer
    scheduler: Schedule
    rundir: RunDir
    logger: Logger
    dp: DataParallel
    start_epoch: int = 0
    best_val: float | None = None
    best_epoch: int | None = None
    resumed_from: str | None = None
    improved: bool = False  # the last epoch's weights are the best so far
    warned: bool = False  # the divergence warning was printed

    def resume_from(self, path: Path) -> None:
        self.start_epoch, self.best_val, self.best_epoch = _resume(
            path, self.net, self.optimizer, self.scheduler, self.rundir, self.dp.is_main
        )
        self.resumed_from = str(path)

    def end_epoch(self, epoch: int, tally: _Tally, seconds: float) -> dict:
        """After an epoch's steps: the silent-neuron fix, the schedule's epoch step, validation
        and the divergence warning; returns the epoch's metrics row."""
        train_acc = tally.correct / tally.seen
        lr = self.optimizer.param_groups[0]["lr"]
        silent = _silent_fix(self.net, tally.counts, self.loop.silent_fix)
        self.scheduler.step_epoch(train_acc)
        hidden_total = self.net.n_hidden_total
        row = {
            "epoch": epoch + 1,
            "train_loss": tally.loss_sum / tally.seen,
            "train_accuracy": train_acc,
            "lr": lr,
            "hidden_rate_hz": float(tally.counts.sum()) / (tally.seen * max(hidden_total, 1) * seconds),
            "silent_neurons": silent,
            **delay_stats(self.net),
        }
        self.improved = self._validate(epoch, row)
        self._warn_if_exploding(epoch, row, lr)
        return row

    def _validate(self, epoch: int, row: dict) -> bool:
        """Validation figures into ``row``; whether this epoch's weights are the best so far."""
        if self.val is None:
            self.best_epoch = epoch + 1
            return True
        v = evaluate(self.net, self.val, self.loss_fn, self.loop.eval_batch_size, self.dp)
        row.update(val_loss=v["loss"], val_accuracy=v["accuracy"])
        if self.best_val is None or v["accuracy"] > self.best_val:
            self.best_val, self.best_epoch = v["accuracy"], epoch + 1
            return True
        return False

    def _warn_if_exploding(self, epoch: int, row: dict, lr: float) -> None:
        metrics = self.rundir.metrics
        warning = _exploding(row["train_loss"], metrics[0]["train_loss"] if metrics else None, lr)
        if warning:
            row["warning"] = warning
            if not self.warned:  # once on the console; every such epoch's metrics row records it
                print(f"eventkit: warning: epoch {epoch + 1}: {warning}", file=sys.stderr, flush=True)
                self.warned = True

    def record(self, epoch: int, row: dict, bar) -> None:
        """The checkpoints first (rank 0), then the metrics line: a metrics row always has its
        checkpoint; then the logger and the progress line."""
        if self.dp.is_main:
            ckpt_dir = self.rundir.checkpoints
            if self.improved:
                save_checkpoint(
                    ckpt_dir / BEST, model_tensors(self.net), {"epoch": epoch + 1, "val_accuracy": self.best_val}
                )
            tensors, opt_meta = _state_tensors(self.net, self.optimizer)
            meta = {"epoch": epoch + 1, "best_val_accuracy": self.best_val, "best_epoch": self.best_epoch}
            save_checkpoint(
                ckpt_dir / LAST, tensors, {**meta, "optimizer": opt_meta, "scheduler": self.scheduler.state_dict()}
            )
        self.rundir.append_metrics(row)
        self.logger.log(row, epoch + 1)
        if self.loop.progress:
            bar.set_postfix(
                loss=f"{row['train_loss']:.4f}",
                train=f"{row['train_accuracy']:.3f}",
                val=f"{row.get('val_accuracy', float('nan')):.3f}",
            )

    def stops_early(self, epoch: int) -> bool:
        """``trainer.patience`` epochs without a better validation accuracy (and epochs left)."""
        loop = self.loop
        if not (loop.patience and self.val is not None and self.best_epoch is not None):
            return False
        if epoch + 1 - self.best_epoch < loop.patience or epoch + 1 >= loop.epochs:
            return False
        print(
            f"early stop after epoch {epoch + 1}: no better validation accuracy for "
            f"{loop.patience} epochs (best {self.best_val:.4f} at epoch {self.best_epoch}; "
            "trainer.patience)",
            flush=True,
        )
        return True

    def result(self) -> FitResult:
        return FitResult(
            epochs=len(self.rundir.metrics),
            best_epoch=self.best_epoch,
            best_val_accuracy=self.best_val,
            metrics=list(self.rundir.metrics),
            resumed_from=self.resumed_from,
        )


#: an epoch's training loss above this, or EXPLODING_FACTOR times the first epoch's, is diverging
EXPLODING_LOSS = 1e6
EXPLODING_FACTOR = 100.0


def _exploding(loss: float, first: float | None, lr: float) -> str | None:
    """A warning when a finite training loss explodes (training goes on; an inf/NaN stops it)."""
    if loss > EXPLODING_LOSS:
        why = f"training loss {loss:.3g} exceeds {EXPLODING_LOSS:.0e}"
    elif first is not None and first > 0 and loss > EXPLODING_FACTOR * first:
        why = f"training loss {loss:.3g} is over {EXPLODING_FACTOR:.0f}x the first epoch's ({first:.3g})"
    else:
        return None
    return (
        f"{why} (learning rate {lr:g}): training is diverging. Fix: lower optimizer.lr (e.g. 100x lower) "
        f"or set trainer.grad_clip=1.0"
    )


def _non_finite(what: str, epoch: int, batch: int, ckpt_dir: Path) -> None:
    last = ckpt_dir / LAST
    keep = f"the last good checkpoint is {last}" if last.exists() else "no epoch had completed, so no checkpoint"
    raise NonFiniteLoss(
        f"{what} at epoch {epoch + 1}, batch {batch + 1}; training stopped ({keep}). "
        f"Try a lower optimizer.lr or set trainer.grad_clip=1.0"
    )


def _resume(
    path: Path,
    net: EventpropNet,
    optimizer: torch.optim.Optimizer,
    scheduler: Schedule,
    rundir: RunDir,
    copy_best: bool = True,
) -> tuple[int, float | None, int | None]:
    """Load ``path``'s last checkpoint into net/optimizer/scheduler, carry its metrics and (with
    ``copy_best``) best checkpoint into this run directory, and return (epochs done, best val
    accuracy, best epoch)."""
    tensors, meta = load_checkpoint(path / "checkpoints" / LAST)
    model = model_state(tensors)
    try:
        net.load_state_dict(model)
    except RuntimeError as exc:
        raise ValueError(
            f"trainer.resume: the checkpoint in {path} does not fit the network of the config "
            f"being resumed ({str(exc).splitlines()[0]}). Fix: resume a run directory whose "
            f"config_resolved.yaml and checkpoints/ come from the same run, or start a new "
            f"run"
        ) from None
    optimizer_from_flat(optimizer, {k: v for k, v in tensors.items() if k.startswith("optim.")}, meta["optimizer"])
    scheduler.load_state_dict(meta["scheduler"])
    epoch = int(meta["epoch"])
    rundir.set_metrics([r for r in read_metrics(path) if r["epoch"] <= epoch])
    if copy_best and (path / "checkpoints" / BEST).exists() and Path(path).resolve() != rundir.path.resolve():
        rundir.checkpoints.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path / "checkpoints" / BEST, rundir.checkpoints / BEST)
    return epoch, meta.get("best_val_accuracy"), meta.get("best_epoch")


def _on_terminal() -> bool:
    return all(getattr(stream, "isatty", lambda: False)() for stream in (sys.stdout, sys.stderr))


def _bar(iterable, enabled: bool, **kwargs):
    """A tqdm bar on a terminal; written to a file or a pipe, one plain line per epoch (on
    stdout, at the bar's ``set_postfix``) and nothing per batch, so logs hold no control codes."""
    if not enabled:
        return _Silent(iterable)
    if not _on_terminal():
        return (
            _Silent(iterable)
            if kwargs.get("leave") is False
            else _Lines(iterable, kwargs.get("initial", 0), kwargs.get("total"))
        )
    from tqdm.auto import tqdm

    bar = tqdm(iterable, dynamic_ncols=True, **kwargs)
    return bar if kwargs.get("leave") is False else _BarWithLogLines(bar, kwargs.get("initial", 0), kwargs.get("total"))


class _Silent:
    def __init__(self, iterable):
        self.iterable = iterable

    def __iter__(self):
        return iter(self.iterable)

    def set_postfix(self, *args, **kwargs):
        pass


class _Lines(_Silent):
    """``epoch 3/30: loss=0.4123 train=0.871 val=0.860 (1.2 s)``, one line per ``set_postfix``."""

    def __init__(self, iterable, initial: int = 0, total: int | None = None):
        super().__init__(iterable)
        self.done, self.total, self.t0 = initial, total, time.perf_counter()

    def set_postfix(self, *args, **kwargs):
        print(self.line(kwargs), flush=True)

    def line(self, fields: dict) -> str:
        self.done += 1
        now = time.perf_counter()
        seconds, self.t0 = now - self.t0, now
        shown = " ".join(f"{k}={v}" for k, v in fields.items())
        return f"epoch {self.done}/{self.total if self.total is not None else '?'}: {shown} ({seconds:.1f} s)"


class _BarWithLogLines(_Lines):
    """A tqdm bar on the terminal; the run's log gets the plain epoch line the bar stands for."""

    def __init__(self, bar, initial: int = 0, total: int | None = None):
        super().__init__(bar, initial, total)
        self.bar = bar

    def set_postfix(self, *args, **kwargs):
        self.bar.set_postfix(*args, **kwargs)
        runlog.log_only(self.line(kwargs))

    def close(self):
        self.bar.close()
