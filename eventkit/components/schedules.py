"""Built-in learning-rate schedules: ``factory(optimizer, **cfg)`` returns a :class:`Schedule`."""

from __future__ import annotations

import math
from typing import Iterable, Protocol

import torch

from eventkit.components.optimizers import non_negative
from eventkit.engine.network import scheduled
from eventkit.base.hookspecs import hookimpl


class Schedule(Protocol):
    """What the training loop calls; ``state_dict``/``load_state_dict`` make resume exact."""

    def step_batch(self) -> None: ...
    def step_epoch(self, train_accuracy: float) -> None: ...
    def state_dict(self) -> dict: ...
    def load_state_dict(self, state: dict) -> None: ...


class _Base:
    def __init__(self, optimizer: torch.optim.Optimizer):
        self.optimizer = optimizer
        self.base_lrs = [g["lr"] for g in optimizer.param_groups]
        self.epoch = 0

    def _set(self, lrs: Iterable[float]) -> None:
        for group, lr in zip(self.optimizer.param_groups, lrs):
            if scheduled(group):  # not the delays: their own constant step size
                group["lr"] = lr

    def step_batch(self) -> None:
        pass

    def step_epoch(self, train_accuracy: float) -> None:
        self.epoch += 1

    def state_dict(self) -> dict:
        return {k: v for k, v in vars(self).items() if k != "optimizer"}

    def load_state_dict(self, state: dict) -> None:
        vars(self).update(state)
        self._set(state["lrs"]) if "lrs" in state else None


class Constant(_Base):
    """The optimizer's learning rate, unchanged."""


class WarmupEmaHalving(_Base):
    """The authors' schedule: warm up from ``lr * start_factor`` multiplying by ``growth`` per
    batch until the base lr is reached; after each epoch update a fast and a slow exponential
    moving average of the training accuracy (``ema = a * ema + (1 - a) * acc``) and halve the lr
    when the fast one falls to or below the slow one -- at most once per ``min_epochs_between``
    epochs, because a plateau needs time to show in the averages."""

    def __init__(
        self,
        optimizer,
        start_factor: float = 1e-3,
        growth: float = 1.05,
        ema_fast: float = 0.8,
        ema_slow: float = 0.85,
        min_epochs_between: int = 50,
        factor: float = 0.5,
    ):
        super().__init__(optimizer)
        if not 0 < start_factor <= 1:
            raise ValueError(f"start_factor must lie in (0, 1], got {start_factor!r}")
        if not growth > 1:
            raise ValueError(f"growth must be > 1 (per-batch warm-up multiplier), got {growth!r}")
        for key, a in (("ema_fast", ema_fast), ("ema_slow", ema_slow)):
            if not 0 <= a < 1:
                raise ValueError(f"{key} must lie in [0, 1), got {a!r}")
        if not 0 < factor < 1:
            raise ValueError(f"factor must lie in (0, 1), got {factor!r}")
        self.growth, self.factor = float(growth), float(factor)
        self.a_fast, self.a_slow = float(ema_fast), float(ema_slow)
        self.min_epochs_between = int(min_epochs_between)
        self.targets = list(self.base_lrs)  # lr to reach at the end of warm-up (halved later)
        self.lrs = [lr * start_factor for lr in self.base_lrs]
        self.fast = self.slow = 0.0
        self.last_change = 0
        self._set(self.lrs)

    def step_batch(self) -> None:
        self.lrs = [min(lr * self.growth, t) for lr, t in zip(self.lrs, self.targets)]
        self._set(self.lrs)

    def step_epoch(self, train_accuracy: float) -> None:
        self.epoch += 1
        self.fast = self.a_fast * self.fast + (1 - self.a_fast) * train_accuracy
        self.slow = self.a_slow * self.slow + (1 - self.a_slow) * train_accuracy
        if self.fast <= self.slow and self.epoch - self.last_change >= self.min_epochs_between:
            self.targets = [t * self.factor for t in self.targets]
            self.lrs = [lr * self.factor for lr in self.lrs]
            self.last_change = self.epoch
            self._set(self.lrs)


class Cosine(_Base):
    """Cosine annealing from the base lr to ``min_lr`` over ``epochs`` (per batch when
    ``steps_per_epoch`` is known, else per epoch), after ``warmup_epochs`` of linear warm-up."""

    def __init__(self, optimizer, epochs: int, min_lr: float = 0.0, warmup_epochs: int = 0):
        super().__init__(optimizer)
        if not isinstance(epochs, int) or epochs < 1:
            raise ValueError(f"epochs must be an integer >= 1, got {epochs!r}")
        self.epochs, self.min_lr, self.warmup = epochs, non_negative("min_lr", min_lr), int(warmup_epochs)
        self.lrs = self._at(0)
        self._set(self.lrs)

    def _at(self, epoch: int) -> list[float]:
        if epoch < self.warmup:
            return [lr * (epoch + 1) / (self.warmup + 1) for lr in self.base_lrs]
        span = max(1, self.epochs - self.warmup)
        frac = min(1.0, (epoch - self.warmup) / span)
        return [self.min_lr + (lr - self.min_lr) * 0.5 * (1 + math.cos(math.pi * frac)) for lr in self.base_lrs]

    def step_epoch(self, train_accuracy: float) -> None:
        self.epoch += 1
        self.lrs = self._at(self.epoch)
        self._set(self.lrs)


@hookimpl
def register_schedulers(register):
    register("constant", Constant, "fixed learning rate")
    register("warmup_ema_halving", WarmupEmaHalving, "x1.05/batch warm-up, halve on train-accuracy EMA crossing")
    register("cosine", Cosine, "cosine annealing over the run")
