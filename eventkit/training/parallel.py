"""Data-parallel training (``trainer.distributed=true``): one process per device or CPU worker
group, joined by torch.distributed (gloo for CPU tensors, NCCL for CUDA tensors).

What a step computes. Every process loads the same data, draws the same epoch permutation
(seeded by ``(seed, epoch)``, like ``DistributedSampler.set_epoch``) and so walks the same global
batches of ``trainer.batch_size`` as a single process would. The engine sums a batch's gradient
over fixed *sample groups* of consecutive samples (``EventpropNet.group_offsets``: 8 groups on the
CPU, one per sample on CUDA), group 0 first. Process ``r`` of ``W`` simulates the consecutive
groups ``[r G / W, (r + 1) G / W)`` of each global batch (a short last batch has fewer groups, down
to none on some processes; no sample is padded or seen twice). The processes then exchange, as
exact copies, their samples' readouts (and spike counts, for the regulariser), so every process
evaluates the loss of the whole batch exactly as one process does; the backward pass sends each
process's rows of that gradient through its own groups, the groups' gradients are exchanged (again
copies, no arithmetic) and every process sums all of them in group order. So a step's gradient,
the optimizer state and every metric are bit for bit those of one process, for any number of
processes: no float addition depends on the world size. (Summing partial sums with an
all-reduce, as DistributedDataParallel does, changes the order of additions; the 1-ulp
differences then grow: a spike that appears or vanishes changes a gradient entry by tens of
per cent, so runs with 1 and 2 processes part after a few dozen steps.) The exchange moves
``G`` gradient rows per step instead of one.

Why not DistributedDataParallel. The engine's whole network is one ``autograd.Function``: every
gradient becomes ready at the same moment, at the end of backward, so DDP's overlap of
communication with computation has nothing to overlap; DDP also averages partial sums (not bit
for bit one process's gradient), divides by the number of processes (wrong for an unevenly split
last batch) and needs every process to run a forward and backward each step (impossible on an
empty share: the engine refuses an empty batch; such a process still takes part in the
exchange, ``EventpropNet.backward_without_samples``).

Parameters start identical (same seed) and every process applies the identical summed gradient,
so they stay identical without being broadcast; checkpoints, metrics, logs and the run directory
are written by rank 0 only (other processes hold the run's records in memory: ``MemoryRunDir``).
Evaluation splits the batches of a split over processes; each batch's loss, correct predictions
and spikes are gathered and added in batch order, as one process adds them.

Launch. ``torchrun`` (or anything else that sets ``RANK``/``WORLD_SIZE``/``MASTER_ADDR``/
``MASTER_PORT``), or hydra-submitit-launcher with several tasks (the environment is exported
from submitit's job environment). Under Hydra the :class:`SameRunDir` callback makes every
process use rank 0's run directory.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch

from eventkit.base.errors import ConfigError
from eventkit.rundir.layout import RunDir

#: the variables torch.distributed's env:// rendezvous reads
INIT_ENV = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
LAUNCH_HINT = (
    "launch it with torchrun (torchrun --standalone --nproc_per_node=2 -m eventkit "
    "trainer.distributed=true ...) or with hydra/launcher=submitit_slurm_distributed"
)


# ------------------------------------------------------------------------ the launch environment
@dataclass(frozen=True)
class Launch:
    """Where this process stands in a multi-process launch, as its environment says."""

    rank: int
    world_size: int
    local_rank: int
    source: str  # "env" (torchrun and the like) or "submitit"


def launch() -> Launch | None:
    """This process's place in a multi-process launch, from the environment: ``RANK`` and
    ``WORLD_SIZE`` (torchrun sets both), else submitit's job environment (a SLURM or local
    submitit job with several tasks). None when this process was launched alone."""
    env = os.environ
    if "RANK" in env and "WORLD_SIZE" in env:
        try:
            rank, world = int(env["RANK"]), int(env["WORLD_SIZE"])
        except ValueError:
            raise ConfigError(
                f"the environment's RANK={env['RANK']!r} / WORLD_SIZE={env['WORLD_SIZE']!r} are not "
                f"integers. Fix: {LAUNCH_HINT}"
            ) from None
        return Launch(rank, world, int(env.get("LOCAL_RANK", rank)), "env") if world > 1 else None
    if env.get("SUBMITIT_EXECUTOR"):
        try:
            import submitit

            job = submitit.JobEnvironment()
        except Exception:  # not inside a submitit job after all
            return None
        if job.num_tasks > 1:
            return Launch(job.global_rank, job.num_tasks, job.local_rank, "submitit")
    return None


def launch_rank() -> int:
    """This process's rank: in the process group it has joined, else in the launch its
    environment describes (:func:`launch`); 0 for a process on its own."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    found = launch()
    return found.rank if found is not None else 0


def is_main_process() -> bool:
    return launch_rank() == 0


# ------------------------------------------------------------------------------ process group
def enabled(cfg: Any) -> bool:
    """``trainer.distributed`` of a config (false when the key is absent)."""
    trainer = cfg.get("trainer") if hasattr(cfg, "get") else None
    value = trainer.get("distributed", False) if trainer is not None else False
    return value is True


def init_process_group(found: Launch) -> None:
    """Join the process group of ``found`` (idempotent). torch's default backend choice: gloo for
    CPU tensors and, where CUDA is available, NCCL for CUDA tensors; each process then uses the
    GPU of its local rank."""
    import torch.distributed as dist

    if dist.is_initialized():
        return
    if found.source == "submitit" and "RANK" not in os.environ:
        from submitit.helpers import TorchDistributedEnvironment

        # one GPU per task when SLURM allocated GPUs (CUDA must not be initialised before this);
        # a MASTER_PORT already in the environment is kept (submitit reads it), the rest is the job's
        TorchDistributedEnvironment().export(
            set_cuda_visible_devices=bool(os.environ.get("CUDA_VISIBLE_DEVICES")), overwrite=True
        )
    missing = [name for name in INIT_ENV if not os.environ.get(name)]
    if missing:
        raise ConfigError(
            f"trainer.distributed: this process is rank {found.rank} of {found.world_size}, but "
            f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set, so it cannot "
            f"reach the others. Fix: {LAUNCH_HINT}"
        )
    dist.init_process_group()
    if torch.cuda.is_available():
        torch.cuda.set_device(found.local_rank % torch.cuda.device_count())


def shutdown() -> None:
    """Leave the process group, if this process joined one."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def setup(cfg: Any) -> "DataParallel | None":
    """The :class:`DataParallel` of a validated config, joining the process group when needed;
    None for a single-process run. ConfigError (one line, with the fix) when
    ``trainer.distributed=true`` has no launch environment or when several processes were
    launched without it."""
    found = launch()
    if not enabled(cfg):
        if found is not None:
            raise ConfigError(
                f"trainer.distributed: this process is rank {found.rank} of {found.world_size} "
                f"launched together, but trainer.distributed=false, so each would train the whole "
                f"run on its own. Fix: add trainer.distributed=true, or launch one process "
                f"(python -m eventkit ...)"
            )
        return None
    import torch.distributed as dist

    if found is None and not dist.is_initialized():
        if os.environ.get("WORLD_SIZE") == "1":  # torchrun --nproc_per_node=1: a group of one
            found = Launch(0, 1, int(os.environ.get("LOCAL_RANK", 0)), "env")
        else:
            raise ConfigError(
                f"trainer.distributed=true, but this process was not launched as one of several "
                f"(no {', '.join(INIT_ENV)} in the environment, no submitit job). Fix: {LAUNCH_HINT}; "
                f"or train in one process with trainer.distributed=false"
            )
    if found is not None:
        init_process_group(found)
    return DataParallel(dist.get_rank(), dist.get_world_size())


# ----------------------------------------------------------------------------- data parallel
def share_groups(rank: int, world_size: int, n_groups: int) -> tuple[int, int]:
    """The consecutive sample groups ``[first, end)`` of a batch's ``n_groups`` that process
    ``rank`` of ``world_size`` simulates (none when there are fewer groups than processes)."""
    return (rank * n_groups) // world_size, ((rank + 1) * n_groups) // world_size


class DataParallel:
    """This process's part of a data-parallel run: rank ``rank`` of ``world_size``."""

    def __init__(self, rank: int, world_size: int):
        self.rank, self.world_size = rank, world_size

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def __repr__(self) -> str:
        return f"DataParallel(rank={self.rank}, world_size={self.world_size})"

    def owns_batch(self, b: int) -> bool:
        """Evaluation splits whole batches: batch ``b`` is this process's when b = rank mod world size."""
        return b % self.world_size == self.rank

    # ---------------------------------------------------------------- collectives
    def sum(self, values: torch.Tensor) -> torch.Tensor:
        """Element-wise sum over processes (in float64; a new tensor, on ``values``' device)."""
        import torch.distributed as dist

        out = values.detach().to(torch.float64).clone()
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out

    def barrier(self) -> None:
        """Wait until every process has reached this point."""
        import torch.distributed as dist

        dist.barrier()

    def broadcast_object(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every process."""
        import torch.distributed as dist

        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def broadcast_module(self, module: torch.nn.Module) -> None:
        """Overwrite every process's parameters and buffers with rank 0's."""
        import torch.distributed as dist

        with torch.no_grad():
            for tensor in module.state_dict().values():
                dist.broadcast(tensor, src=0)

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

    def gather_rows(
        self, local: torch.Tensor | None, sizes: Sequence[int], tail: tuple, dtype, device
    ) -> list[torch.Tensor]:
        """Every process's rows (``sizes[r]`` of process r, each row of shape ``tail``), exact
        copies in rank order; this process's entry is ``local`` itself (graph kept)."""
        import torch.distributed as dist

        width = max(sizes)
        padded = torch.zeros((width, *tail), dtype=dtype, device=device)
        if local is not None and len(local):
            padded[: len(local)] = local.detach()
        parts = [torch.empty_like(padded) for _ in range(self.world_size)]
        dist.all_gather(parts, padded)
        return [local if r == self.rank and local is not None else parts[r][: sizes[r]] for r in range(self.world_size)]

    # ---------------------------------------------------------------- a training step
    def forward_backward(
        self,
        net: Any,
        data: Any,
        idx: np.ndarray,
        loss_fn: Callable,
        reg_strength: float,
        reg_nu: float,
        on_non_finite: Callable[[str], None],
    ) -> tuple[Any, Any, torch.Tensor, int]:
        """One training step's forward and backward of the global batch ``idx``, this process
        simulating its consecutive sample groups (see the module docstring): the loss and the
        regulariser are evaluated on the whole batch's readouts and spike counts, and every
        process ends with the whole batch's gradient, bit for bit what one process computes.
        ``on_non_finite(what)`` is called (on every process alike) when the loss is not finite.
        Returns (network output of this share or None, its labels or None, the whole batch's
        loss, the whole batch's size)."""
        from eventkit.engine import spike_count_regularizer

        n_global = len(idx)
        offsets = net.group_offsets(n_global)
        groups = [share_groups(r, self.world_size, len(offsets) - 1) for r in range(self.world_size)]
        sizes = [int(offsets[end] - offsets[first]) for first, end in groups]
        lo, hi = (int(offsets[g]) for g in groups[self.rank])
        reduction = GroupReduction(self, offsets, groups)
        out = labels = None
        if hi > lo:
            batch = data.subset(idx[lo:hi])
            with net.reducing_gradients(reduction):
                out = net(batch)
            labels = torch.from_numpy(batch.labels).to(out.readout.device)
        tail = self._readout_tail(out, sizes)
        first = next(net.parameters())
        dtype, device = first.dtype, first.device
        readout = torch.cat(self.gather_rows(out.readout if out else None, sizes, tail, dtype, device))
        all_labels = torch.from_numpy(np.ascontiguousarray(data.labels[idx])).to(readout.device)
        loss = loss_fn(readout, all_labels)
        total = loss
        if reg_strength > 0:
            counts = torch.cat(
                self.gather_rows(out.counts if out else None, sizes, (net.n_hidden_total,), dtype, device)
            )
            total = loss + spike_count_regularizer(counts, reg_strength, reg_nu)
        if not torch.isfinite(total):
            on_non_finite(f"loss is {total.item()}")
        if out is not None:
            total.backward()
        else:
            net.backward_without_samples(reduction)
        return out, labels, loss, n_global

    def _readout_tail(self, out: Any, sizes: Sequence[int]) -> tuple:
        """The shape of one sample's readout; asked of the others when this share is empty."""
        if min(sizes) > 0:
            return tuple(out.readout.shape[1:])
        import torch.distributed as dist

        mine = tuple(out.readout.shape[1:]) if out is not None else None
        everyone: list[Any] = [None] * self.world_size
        dist.all_gather_object(everyone, mine)
        return next(tuple(t) for t in everyone if t is not None)

    def threads(self, configured: int | None) -> int:
        """Threads for this process: ``trainer.threads`` when set; else the cores this process may
        run on, divided among the processes on this machine that share exactly those cores (so 2
        processes on 2 cores get 1 each, while SLURM tasks bound to their own cores keep them)."""
        if configured is not None:
            return int(configured)
        import torch.distributed as dist

        cores = (
            sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
        )
        mine = (socket.gethostname(), tuple(cores))
        everyone: list[Any] = [None] * self.world_size
        dist.all_gather_object(everyone, mine)
        sharing = sum(1 for other in everyone if tuple(other) == mine)
        return max(1, len(cores) // max(1, sharing))


class GroupReduction:
    """A training step's :class:`eventkit.engine.backends.GroupReduction`: the whole batch's
    sample groups ``offsets``, of which this process simulates ``groups = (first, end)``; the
    group gradients are gathered (exact copies), so that every process sums all of them in
    group order, as one process does."""

    def __init__(self, dp: DataParallel, offsets: np.ndarray, groups: Sequence[tuple[int, int]]):
        self.dp, self.offsets, self.groups = dp, np.asarray(offsets, dtype=np.int64), list(groups)

    def local_offsets(self) -> np.ndarray:
        first, end = self.groups[self.dp.rank]
        return self.offsets[first : end + 1] - self.offsets[first]

    def combine(self, gw: Any, gd: Any) -> tuple[Any, Any]:
        counts = [end - first for first, end in self.groups]
        as_numpy = isinstance(gw, np.ndarray)
        tw, td = (torch.from_numpy(np.ascontiguousarray(x)) if as_numpy else x for x in (gw, gd))
        both = torch.cat([tw, td], dim=1)
        stacked = torch.cat(self.dp.gather_rows(both, counts, tuple(both.shape[1:]), both.dtype, both.device))
        w, d = stacked[:, : tw.shape[1]], stacked[:, tw.shape[1] :]
        if as_numpy:
            return np.ascontiguousarray(w.numpy()), np.ascontiguousarray(d.numpy())
        return w.contiguous(), d.contiguous()


# ----------------------------------------------------------------- what the other ranks write
class MemoryRunDir(RunDir):
    """The run directory as ranks other than 0 see it: the same records (metrics, stage, manifest)
    kept in memory, nothing written to disk, not even the directory."""

    def __init__(self, path: Path):  # noqa: D107 - no mkdir, unlike RunDir
        self.path = Path(path)
        self.metrics = []
        self.current_stage = None
        self._manifest = {}
        self.logger_error = None
        self._summary = None

    def write_config(self, resolved_yaml: str) -> None:
        pass

    def start_manifest(self, seed: int, plugins: list[dict]) -> None:
        self._manifest = {"seed": seed, "stages_s": {}}

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        self.current_stage = name
        yield

    def finish_manifest(self, status: str = "ok", error: str | None = None) -> None:
        self._manifest.update(status=status, error=error)

    def _write_metrics(self) -> None:
        pass

    def write_summary(self, summary: dict) -> None:
        self._summary = summary

    def record_logger_error(self, error: str) -> None:
        self.logger_error = error


@contextlib.contextmanager
def quiet_unless_main() -> Iterator[None]:
    """On ranks other than 0: nothing on stdout (rank 0 prints the run's lines) and no job log
    file (rank 0 writes it); errors still reach stderr. A no-op on rank 0 and single processes."""
    if is_main_process():
        yield
        return
    loggers = [
        logging.getLogger(),
        *(x for x in logging.Logger.manager.loggerDict.values() if isinstance(x, logging.Logger)),
    ]
    for logger in loggers:  # (a closed FileHandler would reopen its file on the next line logged)
        for handler in [h for h in logger.handlers if isinstance(h, logging.FileHandler)]:
            logger.removeHandler(handler)
            handler.close()
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        yield


# ------------------------------------------------------------------------- Hydra: one run dir
try:
    from hydra.experimental.callback import Callback
except ImportError:  # pragma: no cover - hydra is a dependency
    Callback = object  # type: ignore[misc,assignment]


class SameRunDir(Callback):  # type: ignore[misc]
    """Hydra callback (conf/config.yaml, before the directory guard): in a torchrun launch every
    process composes its own config, and ``hydra.run.dir`` (``outputs/${now:...}``) resolves to
    each process's own clock. This joins the process group before Hydra creates the directory,
    checks rank 0's directory is usable and unused, and gives every process rank 0's directory,
    or rank 0's refusal (each process then exits with status 2). Ranks other than 0 also drop
    Hydra's record (.hydra/) and the job log's file handler, so they write nothing there."""

    def on_run_start(self, config: Any, **kwargs: Any) -> None:
        found = launch()
        if found is None:
            return
        from omegaconf import open_dict, read_write

        from eventkit.rundir.layout import check_unused, check_usable

        init_process_group(found)
        dp = DataParallel(found.rank, found.world_size)
        verdict = None
        if dp.is_main:
            run_dir = str(config.hydra.run.dir)
            try:
                check_usable(Path(run_dir))
                check_unused(Path(run_dir), resume=(config.get("trainer") or {}).get("resume"))
                Path(run_dir).mkdir(parents=True, exist_ok=True)  # before the others look for it
                verdict = ("ok", run_dir)
            except ValueError as exc:
                verdict = ("refused", str(exc))
            except Exception:  # e.g. an unresolvable trainer.resume: the run's own checks report it
                verdict = ("ok", run_dir)
        status, text = dp.broadcast_object(verdict)
        if status != "ok":
            if dp.is_main:
                print(f"eventkit: error: {text}", file=sys.stderr, flush=True)
            shutdown()
            raise SystemExit(2)
        if dp.is_main:
            return
        with read_write(config.hydra), open_dict(config.hydra):
            config.hydra.run.dir = text
            config.hydra.output_subdir = None
            _drop_file_handlers(config.hydra.job_logging)

    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        found = launch()
        if found is not None and found.source == "env":
            print(
                "eventkit: error: a sweep (-m) launched by torchrun would run every job in every process, each "
                "into its own sweep directory. Fix: sweep with hydra/launcher=submitit_slurm_distributed "
                "(or submitit_local_distributed), or run one configuration per torchrun command",
                file=sys.stderr,
                flush=True,
            )
            raise SystemExit(2)


def _drop_file_handlers(logging_cfg: Any) -> None:
    """Remove the handlers that write files (``filename``) from a logging dictConfig."""
    if logging_cfg is None or "handlers" not in logging_cfg or logging_cfg.handlers is None:
        return
    files = [name for name, h in logging_cfg.handlers.items() if h is not None and "filename" in h]
    for name in files:
        del logging_cfg.handlers[name]
    users = [logging_cfg.get("root")] + list((logging_cfg.get("loggers") or {}).values())
    for user in users:
        if user is not None and user.get("handlers") is not None:
            user.handlers = [h for h in user.handlers if h not in files]


__all__ = ["DataParallel", "Launch", "MemoryRunDir", "SameRunDir", "launch", "launch_rank", "setup", "shutdown"]
