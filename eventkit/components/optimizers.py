"""Built-in optimizers: ``factory(params, **cfg)`` returns a ``torch.optim.Optimizer``.

These are registered through the same pluggy hooks as any third-party plugin (see the
``register_*`` functions at the bottom), so replacing one is a matter of config.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from eventkit.base.hookspecs import hookimpl


def _positive(name: str, value: float) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
        raise ValueError(f"{name} must be a number > 0, got {value!r}")
    return float(value)


#: the largest float32: parameters are float32, so no optimizer step may exceed it
_FLOAT32_MAX = 3.4028234663852886e38


def _lr(lr: float, first_step: float = 1.0, why: str = "") -> float:
    """A learning rate > 0 whose first step (``lr * first_step``, e.g. Adam's bias correction
    1 / (1 - beta1)) fits the parameters' 32-bit floats."""
    lr = _positive("lr", lr)
    if not lr * first_step < _FLOAT32_MAX:
        raise ValueError(
            f"lr={lr:g} is too large: the first step{why} overflows 32-bit floats "
            f"(max {_FLOAT32_MAX:.3g}). Fix: lower optimizer.lr (e.g. 1e-3)"
        )
    return lr


def non_negative(name: str, value: float) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not value >= 0:
        raise ValueError(f"{name} must be a number >= 0, got {value!r}")
    return float(value)


# -------------------------------------------------------------------------------- optimizers
# Adam and AdamW run torch's fused kernel: its square root is the elementwise one (IEEE, the same on
# every CPU in strict mode), where the per-tensor ``sqrt`` of the default implementation goes
# through MKL's vector math, whose last bit follows the CPU (eventkit.engine.portable)
def adam(
    params, lr: float = 1e-3, betas: Sequence[float] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0
) -> torch.optim.Optimizer:
    """Adam with the authors' defaults (lr 1e-3)."""
    return torch.optim.Adam(
        params,
        lr=_adam_lr(lr, betas),
        betas=tuple(betas),
        eps=eps,
        weight_decay=non_negative("weight_decay", weight_decay),
        fused=True,
    )


def adamw(
    params, lr: float = 1e-3, betas: Sequence[float] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 1e-2
) -> torch.optim.Optimizer:
    """Adam with decoupled weight decay."""
    return torch.optim.AdamW(
        params,
        lr=_adam_lr(lr, betas),
        betas=tuple(betas),
        eps=eps,
        weight_decay=non_negative("weight_decay", weight_decay),
        fused=True,
    )


def _adam_lr(lr: float, betas: Sequence[float]) -> float:
    beta1 = float(betas[0])
    scale = 1.0 / (1.0 - beta1) if beta1 < 1.0 else math.inf
    return _lr(lr, scale, f" (lr / (1 - beta1) = {_positive('lr', lr) * scale:g})")


def sgd(
    params, lr: float = 1e-2, momentum: float = 0.9, nesterov: bool = False, weight_decay: float = 0.0
) -> torch.optim.Optimizer:
    """Stochastic gradient descent with (optionally Nesterov) momentum."""
    return torch.optim.SGD(
        params,
        lr=_lr(lr),
        momentum=non_negative("momentum", momentum),
        nesterov=bool(nesterov),
        weight_decay=non_negative("weight_decay", weight_decay),
    )


@hookimpl
def register_optimizers(register):
    register("adam", adam, "torch.optim.Adam")
    register("adamw", adamw, "torch.optim.AdamW (decoupled weight decay)")
    register("sgd", sgd, "torch.optim.SGD with momentum")
