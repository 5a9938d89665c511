"""Elementary functions whose result does not depend on the CPU.

torch computes ``exp`` (and ``log``, ``sqrt``, ...) on the CPU through MKL's vector math library,
whose code path -- and last bit -- follows the CPU's vendor and vector width even with
``MKL_CBWR`` pinned; a strict run (``trainer.reproducible=strict``) must not depend on it.
:func:`exp` evaluates glibc's ``exp`` through numpy's baseline code (strict mode keeps numpy off
its CPU-dispatched variants), in float64, and is differentiable like ``torch.exp``.
"""

from __future__ import annotations

import numpy as np
import torch


class _Exp(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        out = torch.from_numpy(np.asarray(np.exp(x.detach().cpu().numpy().astype(np.float64))))
        out = out.to(dtype=x.dtype, device=x.device)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved_tensors
        return grad * out


def exp(x) -> torch.Tensor:
    """``torch.exp(x)`` (``x`` a tensor or number; a number gives a float64 0-d tensor), the same
    on every x86-64 CPU."""
    return _Exp.apply(torch.as_tensor(x, dtype=torch.float64) if not torch.is_tensor(x) else x)


__all__ = ["exp"]
