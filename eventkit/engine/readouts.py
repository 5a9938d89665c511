"""Readouts (loss shapes): torch functions of the output voltage trace or first-spike times.

The engine returns the output population's voltage at every grid time, ``trace`` [B, T, n_out]
(small: T x n_out per sample, never T x hidden), and the first spike time of each output neuron,
``t_first`` [B, n_out] in ms (``n_steps * dt`` when it never fires). A readout maps them to what the
loss sees. Because the readout is plain torch, autograd turns d loss / d readout into the adjoint
drive of the output neurons (d loss / d trace, d loss / d t_first), which the kernels consume.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from . import portable


@dataclass(frozen=True)
class Readout:
    name = "readout"
    needs_output_spikes = False

    def __call__(self, trace: torch.Tensor, t_first: torch.Tensor, dt: float) -> torch.Tensor:
        raise NotImplementedError  # pragma: no cover - abstract

    def predict(self, readout: torch.Tensor) -> torch.Tensor:
        """Class index per sample: the largest readout wins."""
        return readout.argmax(dim=-1)

    def describe(self) -> dict:
        return {"name": self.name, **asdict(self)}


@dataclass(frozen=True)
class SumV(Readout):
    """Sum over time of the output voltage."""

    name = "sum_v"

    def __call__(self, trace, t_first, dt):
        return trace.sum(dim=1)


@dataclass(frozen=True)
class MeanV(Readout):
    """Mean over time of the output voltage."""

    name = "mean_v"

    def __call__(self, trace, t_first, dt):
        return trace.mean(dim=1)


@dataclass(frozen=True)
class ExpWeightedMeanV(Readout):
    """Mean over time of V weighted by exp(-t / T_total) (the authors' "avg_var_exp_weight"):
    early evidence counts more, which is what a chip reading its readout online can use."""

    name = "exp_mean_v"

    def __call__(self, trace, t_first, dt):
        n_steps = trace.shape[1]
        t = torch.arange(1, n_steps + 1, dtype=trace.dtype, device=trace.device) * dt
        weight = portable.exp(-t / (n_steps * dt)) / n_steps
        # an elementwise product and a sum over time, not a matmul: BLAS picks its kernels by CPU
        return (trace * weight[:, None]).sum(dim=1)


@dataclass(frozen=True)
class MaxV(Readout):
    """Maximum over the grid times of the output voltage, ``max_n V(n dt)``.

    Its gradient is the exact slope of this grid maximum (finite differences:
    tests/test_engine_gradients.py, tests/test_exactness_claims.py). It is not in general the
    gradient of the continuous-time maximum ``max_t V(t)`` and does not converge to it as
    dt -> 0: where the maximum sits at a hidden spike's arrival (a kink of V), the grid maximum
    is the grid point just before the spike (slope 0 in its spike time) or just after it (a slope
    that includes the decline after the spike). tests/test_exactness_claims.py shows a network
    where the error stays 0.91 for dt = 0.1, 0.01 and 0.001 ms (docs/engine.md, "What is
    exact")."""

    name = "max_v"

    def __call__(self, trace, t_first, dt):
        return trace.max(dim=1).values


@dataclass(frozen=True)
class FirstSpike(Readout):
    """First spike time of spiking output neurons, returned as logits ``-t / tau0`` so that
    cross-entropy is the time-to-first-spike loss of Wunderlich & Pehle; the earliest neuron wins.
    Needs a spiking output population (e.g. ``output=LIF(...)``)."""

    tau0: float = 5.0
    name = "first_spike"
    needs_output_spikes = True

    def __post_init__(self):
        if not self.tau0 > 0:
            raise ValueError(f"first_spike: tau0 must be > 0 ms, got {self.tau0}")

    def __call__(self, trace, t_first, dt):
        return -t_first / self.tau0


@dataclass(frozen=True)
class PerStepV(Readout):
    """The whole voltage trace [B, T, n_out], for per-time-step losses; prediction by summed V."""

    name = "per_step"

    def __call__(self, trace, t_first, dt):
        return trace

    def predict(self, readout):
        return readout.sum(dim=1).argmax(dim=-1)


READOUTS = {cls.name: cls for cls in (SumV, MeanV, ExpWeightedMeanV, MaxV, FirstSpike, PerStepV)}
