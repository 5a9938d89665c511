"""One training step, the same in one process and in several: a single process trains as a
data-parallel group of one (:class:`eventkit.training.parallel.DataParallel`).

What a step computes, on every process of the group alike. The global batch ``idx`` (the same on
every process: each draws the same epoch permutation) is split into the engine's fixed sample
groups; this process simulates its consecutive groups (all of them when it is alone). The
processes exchange their samples' readouts (and hidden spike counts, for the regulariser) as
exact copies, so every process evaluates the :class:`Objective` of the whole batch, the batch
mean of the loss plus the regulariser, exactly as one process does. The backward pass sends
each process's rows of that gradient through its own groups; the groups' gradients are gathered
(copies, no arithmetic) and summed in group order (:class:`eventkit.training.parallel.GroupReduction`).
So the gradient, the optimizer state and every metric are bit for bit those of one process, for
any number of processes. The optimizer then steps, the learned delays are clamped to their
range, and the schedule takes its per-batch step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import torch

if TYPE_CHECKING:
    from eventkit.components.networks import RegularizerConfig
    from eventkit.components.schedules import Schedule
    from eventkit.data import SpikeData
    from eventkit.engine import EngineOutput, EventpropNet
    from eventkit.training.parallel import DataParallel

#: a loss: (readout [B, n_out], labels [B]) -> scalar tensor
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Objective:
    """What a step minimises: ``loss_fn`` of a batch's readouts and labels, plus, with
    ``regularizer.strength > 0``, the spike-count regulariser of its hidden spike counts."""

    loss_fn: LossFn
    regularizer: RegularizerConfig

    @property
    def needs_counts(self) -> bool:
        return self.regularizer.strength > 0

    def __call__(
        self, readout: torch.Tensor, labels: torch.Tensor, counts: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(the loss, the loss plus the regulariser: what the step differentiates)."""
        loss = self.loss_fn(readout, labels)
        if not self.needs_counts:
            return loss, loss
        from eventkit.engine import spike_count_regularizer

        return loss, loss + spike_count_regularizer(counts, self.regularizer.strength, self.regularizer.nu)


@dataclass
class StepResult:
    out: EngineOutput | None  # this process's share of the batch (None: its share was empty)
    labels: torch.Tensor | None  # that share's labels
    loss: torch.Tensor  # the whole batch's loss (the batch mean, without the regulariser)
    size: int  # the whole batch's number of samples


def forward_backward(
    net: EventpropNet,
    data: SpikeData,
    idx: np.ndarray,
    objective: Objective,
    dp: DataParallel,
    on_non_finite: Callable[[str], None],
) -> StepResult:
    """The forward and backward pass of the global batch ``idx`` of ``data``: this process
    simulates its sample groups, the objective is evaluated on the whole batch's readouts and
    counts, and ``.grad`` receives the whole batch's gradient (see the module docstring).
    ``on_non_finite(what)`` is called (on every process alike) when the objective is not finite."""
    offsets = net.group_offsets(len(idx))
    reduction, sizes = dp.share(offsets)
    lo, hi = (int(offsets[g]) for g in reduction.groups[dp.rank])
    out = labels = None
    if hi > lo:
        batch = data.subset(idx[lo:hi])
        with net.reducing_gradients(reduction):
            out = net(batch)
        labels = torch.from_numpy(batch.labels).to(out.readout.device)
    first = next(net.parameters())

    def whole(local: torch.Tensor | None, tail: tuple) -> torch.Tensor:
        parts = dp.gather_rows(local, sizes, tail, first.dtype, first.device)
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    readout = whole(out.readout if out is not None else None, _readout_tail(out, sizes, dp))
    counts = whole(out.counts if out is not None else None, (net.n_hidden_total,)) if objective.needs_counts else None
    all_labels = torch.from_numpy(np.ascontiguousarray(data.labels[idx])).to(readout.device)
    loss, total = objective(readout, all_labels, counts)
    if not torch.isfinite(total):
        on_non_finite(f"loss is {total.item()}")
    if out is not None:
        total.backward()
    else:
        net.backward_without_samples(reduction)
    return StepResult(out, labels, loss, len(idx))


def _readout_tail(out: Any, sizes: list[int], dp: DataParallel) -> tuple:
    """The shape of one sample's readout; asked of the others when this share is empty."""
    if min(sizes) > 0:
        return tuple(out.readout.shape[1:])
    mine = tuple(out.readout.shape[1:]) if out is not None else None
    return next(tuple(t) for t in dp.gather_objects(mine) if t is not None)


@dataclass
class Step:
    """One optimisation step of ``net`` on a global batch: :func:`forward_backward`, a check
    that every gradient is finite, the weights' gradient clipped to ``grad_clip`` (their global
    norm; delays have their own step size), the optimizer step, the delays clamped to their
    range and the schedule's per-batch step."""

    net: EventpropNet
    objective: Objective
    optimizer: torch.optim.Optimizer
    scheduler: Schedule
    dp: DataParallel
    grad_clip: float | None = None

    def __call__(self, data: SpikeData, idx: np.ndarray, on_non_finite: Callable[[str], None]) -> StepResult:
        self.optimizer.zero_grad(set_to_none=True)
        result = forward_backward(self.net, data, idx, self.objective, self.dp, on_non_finite)
        grads = [p.grad for p in self.net.parameters() if p.grad is not None]
        if any(not torch.isfinite(g).all() for g in grads):
            on_non_finite("a gradient is not finite")
        if self.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.net.weight_parameters(), self.grad_clip)
        self.optimizer.step()
        self.net.clamp_parameters()  # learned delays and time constants stay in range
        self.scheduler.step_batch()
        return result
