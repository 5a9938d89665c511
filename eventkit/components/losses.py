"""Built-in losses: ``factory(**cfg)`` returns ``loss(readout, labels) -> scalar tensor``."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from eventkit.base.hookspecs import hookimpl


def _per_step(loss: Callable, readout: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """A per-step readout [B, T, C] is scored at every step (mean over steps)."""
    b, t, c = readout.shape
    return loss(readout.reshape(b * t, c), labels.repeat_interleave(t))


def cross_entropy(label_smoothing: float = 0.0) -> Callable:
    """Softmax cross-entropy on the readout (the authors' loss)."""
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"label_smoothing must lie in [0, 1), got {label_smoothing!r}")

    def loss(readout: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if readout.ndim == 3:
            return _per_step(loss, readout, labels)
        return F.cross_entropy(readout, labels, label_smoothing=label_smoothing)

    return loss


def mse(target_on: float = 1.0, target_off: float = 0.0) -> Callable:
    """Mean-square error between the readout and a one-hot target (``target_on`` for the
    label class, ``target_off`` elsewhere)."""

    def loss(readout: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if readout.ndim == 3:
            return _per_step(loss, readout, labels)
        target = torch.full_like(readout, float(target_off))
        target[torch.arange(len(labels)), labels] = float(target_on)
        return F.mse_loss(readout, target)

    return loss


@hookimpl
def register_losses(register):
    register("cross_entropy", cross_entropy, "softmax cross-entropy on the readout")
    register("mse", mse, "mean-square error to a one-hot target")
