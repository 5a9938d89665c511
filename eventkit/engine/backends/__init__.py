"""Engine backends: where the forward and Eventprop backward kernels run.

A backend turns a :class:`~eventkit.engine.topology.Topology` into a *plan* once (the flat arrays
its kernels read), and then, per call, simulates a batch forward and runs the adjoint pass
backward. The autograd Function (:mod:`eventkit.engine.autograd`) talks only to this protocol:
``cpu`` (numba, numpy arrays) and ``cuda`` (numba-cuda, torch CUDA tensors) slot in alike.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import torch

from ...data.spikes import SpikeData
from ..topology import Topology


class Backend(Protocol):
    name: str
    # whether the kernels specialised for closed-form models learn their coefficients (learn_tau);
    # where not, a network learning its models' constants runs them by their description
    learns_closed_form_constants: bool

    def plan(self, topology: Topology, dt: float, n_steps: int) -> Any:
        """Everything about the network that does not change between calls."""

    def inputs(
        self, plan: Any, weights: dict, delays: dict, thresholds: dict, dtype, coefficients: dict | None = None
    ) -> Any:
        """Per-call kernel inputs from the effective weights (n_post, n_pre), delays in ms (by
        connection name), threshold overrides (by population index) and ``coefficients``: the
        :class:`~eventkit.engine.neurons.Coefficients` of populations whose time constants are
        learned (by population index); with them, ``backward`` also returns those rows'
        gradients."""

    def forward(self, plan: Any, inputs: Any, data: SpikeData) -> dict:
        """Simulate ``data``; returns at least ``trace`` [B, T, n_out], ``t_first`` [B, n_out]
        (in steps), ``counts`` [B, n_hidden] and whatever ``backward`` needs."""

    def backward(
        self,
        plan: Any,
        inputs: Any,
        data: SpikeData,
        forward: dict,
        g_trace: np.ndarray,
        g_tfirst: np.ndarray,
        g_counts: np.ndarray,
        reduction: "GroupReduction | None" = None,
    ) -> tuple[dict, dict, dict]:
        """dL/dw (n_post, n_pre) and dL/d(delay) in ms^-1, by connection name, and dL/d(coefficient
        row) by population index where ``inputs`` asked for them: the sum over the
        batch's sample groups (:meth:`group_offsets`), group 0 first. With ``reduction`` the
        groups are ``reduction.local_offsets()`` and the sum runs over ``reduction.combine``'s
        groups (every process's, see :class:`GroupReduction`); ``data`` is None for a process
        whose share of the batch is empty (it takes part in the combination with no groups)."""

    def group_offsets(self, plan: Any, n_batch: int) -> np.ndarray:
        """The sample groups of a batch of ``n_batch``: int64 boundaries ``[0, ..., n_batch]``,
        group g holding samples ``off[g]`` to ``off[g + 1] - 1``. A batch's gradient is the sum
        of its groups' gradients in group order, each group summed over its samples in order."""


class GroupReduction(Protocol):
    """How the groups of a batch split over several processes are summed in one fixed order
    (``eventkit.training.parallel``): each process computes the gradients of its own consecutive
    groups, ``combine`` returns every group's (in the order of the whole batch, the same on
    every process), and the sum then runs as in one process over the whole batch."""

    def local_offsets(self) -> np.ndarray:
        """This process's groups: boundaries within its share (``[0]`` for no groups)."""

    def combine(self, gw: Any, gd: Any) -> tuple[Any, Any]:
        """``(gw, gd)`` stacks ``[groups, n]`` of this process's groups -> the whole batch's
        stacks, as arrays of the same kind (numpy or torch) and precision."""

    def to_torch(self, x: Any) -> torch.Tensor:
        """A result array (``forward``'s or ``backward``'s) as a torch tensor, without a copy
        where the memory allows one."""

    def from_torch(self, g: torch.Tensor, inputs: Any) -> Any:
        """An incoming gradient as the kernels' array type in the precision of ``inputs``."""


BACKENDS = ("cpu", "cuda")
DEVICES = ("cpu", "cuda", "auto")


def get_backend(name: str) -> Backend:
    """The backend ``name`` (one of :data:`BACKENDS`); ``cuda`` raises a one-line ValueError with
    the fix where no device, driver or numba-cuda is present."""
    if name == "cpu":
        from .cpu import CpuBackend

        return CpuBackend()
    if name == "cuda":
        from .cuda import CudaBackend

        return CudaBackend()
    raise ValueError(f"engine backend {name!r} is not available; known: {list(BACKENDS)}")


def resolve_device(device: str) -> str:
    """``trainer.device`` -> backend name: ``auto`` is ``cuda`` where a GPU can be used, else
    ``cpu``; ``cuda`` is checked here so that a run fails before it loads data."""
    if device not in DEVICES:
        raise ValueError(f"trainer.device={device!r}: must be one of {list(DEVICES)}. Fix: trainer.device=auto")
    if device == "cpu":
        return "cpu"
    from .cuda import cuda_problem

    problem = cuda_problem()
    if device == "auto":
        return "cpu" if problem else "cuda"
    if problem:
        raise ValueError(f"trainer.device=cuda: {problem}")
    return "cuda"
