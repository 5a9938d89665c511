"""Data parallelism: the processes that train one run together, and how a batch splits over them.

A :class:`DataParallel` is this process's place in the group (rank ``rank`` of ``world_size``)
and the group's collectives. Every run trains through one: a single process is a group of one
(``DataParallel(0, 1)``, whose collectives are identities and need no torch.distributed), a
launch of several (``trainer.distributed=true``; :mod:`eventkit.training.launch`) joins them by
torch.distributed (gloo for CPU tensors, NCCL for CUDA tensors). The training step itself, the
same for both, is :mod:`eventkit.training.step`.

How a batch splits. The engine sums a batch's gradient over fixed *sample groups* of consecutive
samples (``EventpropNet.group_offsets``: 8 groups on the CPU, one per sample on CUDA), group 0
first. Process ``r`` of ``W`` simulates the consecutive groups ``[r G / W, (r + 1) G / W)`` of
each global batch (:func:`share_groups`; a short last batch has fewer groups, down to none on
some processes; no sample is padded or seen twice). :class:`GroupReduction` gathers the groups'
gradients as exact copies, and every process sums all of them in group order, as one process
does: no float addition depends on the world size. (Summing partial sums with an all-reduce, as
DistributedDataParallel does, changes the order of additions; the 1-ulp differences then grow:
a spike that appears or vanishes changes a gradient entry by tens of per cent, so runs with 1
and 2 processes part after a few dozen steps.) The exchange moves ``G`` gradient rows per step
instead of one.

Why not DistributedDataParallel. The engine's whole network is one ``autograd.Function``: every
gradient becomes ready at the same moment, at the end of backward, so DDP's overlap of
communication with computation has nothing to overlap; DDP also averages partial sums (not bit
for bit one process's gradient), divides by the number of processes (wrong for an unevenly split
last batch) and needs every process to run a forward and backward each step (impossible on an
empty share: the engine refuses an empty batch; such a process still takes part in the
exchange, ``EventpropNet.backward_without_samples``).

Parameters start identical (same seed) and every process applies the identical summed gradient,
so they stay identical without being broadcast; checkpoints, metrics, logs and the run directory
are written by rank 0 only (other processes hold the run's records in memory:
:class:`eventkit.rundir.memory.MemoryRunDir`). Evaluation splits the batches of a split over
processes; each batch's loss, correct predictions and spikes are gathered and added in batch
order, as one process adds them.
"""

from __future__ import annotations

import os
import socket
from typing import Any, Sequence

import numpy as np
import torch

from eventkit.base.errors import ConfigError


def share_groups(rank: int, world_size: int, n_groups: int) -> tuple[int, int]:
    """The consecutive sample groups ``[first, end)`` of a batch's ``n_groups`` that process
    ``rank`` of ``world_size`` simulates (none when there are fewer groups than processes)."""
    return (rank * n_groups) // world_size, ((rank + 1) * n_groups) // world_size


class DataParallel:
    """This process's part of a data-parallel run: rank ``rank`` of ``world_size``. With
    ``world_size`` 1 (this process alone) every collective returns its input, without
    torch.distributed."""

    def __init__(self, rank: int = 0, world_size: int = 1):
        if not 0 <= rank < world_size:
            raise ValueError(f"DataParallel: rank {rank} is not one of the {world_size} processes")
        self.rank, self.world_size = rank, world_size

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def alone(self) -> bool:
        """A group of one: nothing to exchange."""
        return self.world_size == 1

    def __repr__(self) -> str:
        return f"DataParallel(rank={self.rank}, world_size={self.world_size})"

    def owns_batch(self, b: int) -> bool:
        """Evaluation splits whole batches: batch ``b`` is this process's when b = rank mod world size."""
        return b % self.world_size == self.rank

    def share(self, offsets: np.ndarray) -> tuple["GroupReduction", list[int]]:
        """A batch's sample groups ``offsets`` over the processes: the step's
        :class:`GroupReduction` and every process's number of samples, in rank order."""
        groups = [share_groups(r, self.world_size, len(offsets) - 1) for r in range(self.world_size)]
        sizes = [int(offsets[end] - offsets[first]) for first, end in groups]
        return GroupReduction(self, offsets, groups), sizes

    # ---------------------------------------------------------------- collectives
    def sum(self, values: torch.Tensor) -> torch.Tensor:
        """Element-wise sum over processes (in float64; a new tensor, on ``values``' device)."""
        out = values.detach().to(torch.float64).clone()
        if not self.alone:
            import torch.distributed as dist

            dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out

    def barrier(self) -> None:
        """Wait until every process has reached this point."""
        if not self.alone:
            import torch.distributed as dist

            dist.barrier()

    def broadcast_object(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every process."""
        if self.alone:
            return obj
        import torch.distributed as dist

        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def broadcast_module(self, module: torch.nn.Module) -> None:
        """Overwrite every process's parameters and buffers with rank 0's."""
        if self.alone:
            return
        import torch.distributed as dist

        with torch.no_grad():
            for tensor in module.state_dict().values():
                dist.broadcast(tensor, src=0)

    def gather_objects(self, obj: Any) -> list[Any]:
        """Every process's ``obj``, in rank order."""
        if self.alone:
            return [obj]
        import torch.distributed as dist

        everyone: list[Any] = [None] * self.world_size
        dist.all_gather_object(everyone, obj)
        return everyone

    def gather_rows(
        self, local: torch.Tensor | None, sizes: Sequence[int], tail: tuple, dtype, device
    ) -> list[torch.Tensor]:
        """Every process's rows (``sizes[r]`` of process r, each row of shape ``tail``), exact
        copies in rank order; this process's entry is ``local`` itself (graph kept)."""
        if local is None:
            local = torch.zeros((0, *tail), dtype=dtype, device=device) if self.alone else None
        if self.alone:
            return [local]
        import torch.distributed as dist

        width = max(sizes)
        padded = torch.zeros((width, *tail), dtype=dtype, device=device)
        if local is not None and len(local):
            padded[: len(local)] = local.detach()
        parts = [torch.empty_like(padded) for _ in range(self.world_size)]
        dist.all_gather(parts, padded)
        return [local if r == self.rank and local is not None else parts[r][: sizes[r]] for r in range(self.world_size)]

    # ---------------------------------------------------------------- checks and resources
    def check_groups(self, net: Any, batch_size: int) -> None:
        """ConfigError (one line, with the fix) when a full batch has fewer sample groups than
        there are processes: the processes split a batch by groups, so some would idle."""
        n_groups = len(net.group_offsets(batch_size)) - 1
        if n_groups >= self.world_size:
            return
        most = len(net.group_offsets(max(batch_size, self.world_size))) - 1  # groups cap at the engine's
        fix = f"launch at most {n_groups} process{'es' if n_groups != 1 else ''}"
        if most >= self.world_size:
            fix = f"trainer.batch_size={self.world_size} or more, or {fix}"
        raise ConfigError(
            f"trainer.batch_size: a batch of {batch_size} has {n_groups} sample group{'s' if n_groups != 1 else ''} "
            f"(the unit the processes split), so {self.world_size - n_groups} of the {self.world_size} processes "
            f"would have nothing to do. Fix: {fix}"
        )

    def threads(self, configured: int | None) -> int:
        """Threads for this process: ``trainer.threads`` when set; else the cores this process may
        run on, divided among the processes on this machine that share exactly those cores (so 2
        processes on 2 cores get 1 each, while SLURM tasks bound to their own cores keep them)."""
        if configured is not None:
            return int(configured)
        cores = (
            sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
        )
        mine = (socket.gethostname(), tuple(cores))
        sharing = sum(1 for other in self.gather_objects(mine) if tuple(other) == mine)
        return max(1, len(cores) // max(1, sharing))


class GroupReduction:
    """A training step's :class:`eventkit.engine.backends.GroupReduction`: the whole batch's
    sample groups ``offsets``, of which process r simulates ``groups[r] = (first, end)``; the
    group gradients are gathered (exact copies), so that every process sums all of them in
    group order, as one process does. In a group of one the local groups are the batch's."""

    def __init__(self, dp: DataParallel, offsets: np.ndarray, groups: Sequence[tuple[int, int]]):
        self.dp, self.offsets, self.groups = dp, np.asarray(offsets, dtype=np.int64), list(groups)

    def local_offsets(self) -> np.ndarray:
        first, end = self.groups[self.dp.rank]
        return self.offsets[first : end + 1] - self.offsets[first]

    def combine(self, gw: Any, gd: Any) -> tuple[Any, Any]:
        if self.dp.alone:  # this process's groups are all of them
            return gw, gd
        counts = [end - first for first, end in self.groups]
        as_numpy = isinstance(gw, np.ndarray)
        tw, td = (torch.from_numpy(np.ascontiguousarray(x)) if as_numpy else x for x in (gw, gd))
        both = torch.cat([tw, td], dim=1)
        stacked = torch.cat(self.dp.gather_rows(both, counts, tuple(both.shape[1:]), both.dtype, both.device))
        w, d = stacked[:, : tw.shape[1]], stacked[:, tw.shape[1] :]
        if as_numpy:
            return np.ascontiguousarray(w.numpy()), np.ascontiguousarray(d.numpy())
        return w.contiguous(), d.contiguous()


__all__ = ["DataParallel", "GroupReduction", "share_groups"]
