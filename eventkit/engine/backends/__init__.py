"""Engine backends: where the forward and Eventprop backward kernels run.

A backend turns a :class:`~eventkit.engine.topology.Topology` into a *plan* once (the flat arrays
its kernels read), and then, per call, simulates a batch forward and runs the adjoint pass
backward. The autograd Function (:mod:`eventkit.engine.autograd`) talks only to this protocol,
so a second backend (e.g. CUDA) slots in without touching the network or the Function.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from ...data import SpikeData
from ..topology import Topology


class Backend(Protocol):
    name: str

    def plan(self, topology: Topology, dt: float, n_steps: int) -> Any:
        """Everything about the network that does not change between calls."""

    def inputs(self, plan: Any, weights: dict, delays: dict, thresholds: dict, dtype) -> Any:
        """Per-call kernel inputs from the effective weights (n_post, n_pre), delays in ms (by
        connection name) and threshold overrides (by population index)."""

    def forward(self, plan: Any, inputs: Any, data: SpikeData) -> dict:
        """Simulate ``data``; returns at least ``trace`` [B, T, n_out], ``t_first`` [B, n_out]
        (in steps), ``counts`` [B, n_hidden] and whatever ``backward`` needs."""

    def backward(self, plan: Any, inputs: Any, data: SpikeData, forward: dict,
                 g_trace: np.ndarray, g_tfirst: np.ndarray, g_counts: np.ndarray
                 ) -> tuple[dict, dict]:
        """dL/dw (n_post, n_pre) and dL/d(delay) in ms^-1, by connection name."""


def get_backend(name: str) -> Backend:
    if name == "cpu":
        from .cpu import CpuBackend

        return CpuBackend()
    raise ValueError(f"engine backend {name!r} is not available; known: ['cpu']")
