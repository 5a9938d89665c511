"""Where this process stands in a multi-process launch, and joining or leaving its group.

``torchrun`` (or anything else that sets ``RANK``/``WORLD_SIZE``/``MASTER_ADDR``/``MASTER_PORT``)
and hydra-submitit-launcher with several tasks (the environment is exported from submitit's job
environment) describe a launch; :func:`launch` reads it, :func:`setup` checks it against
``trainer.distributed`` and joins the torch.distributed group (gloo for CPU tensors, NCCL for
CUDA tensors) as a :class:`~eventkit.training.parallel.DataParallel`, :func:`shutdown` leaves
it. What the processes then compute together: :mod:`eventkit.training.parallel`.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from typing import Any, Iterator

import torch

from eventkit.base.errors import ConfigError
from eventkit.training.parallel import DataParallel

#: the variables torch.distributed's env:// rendezvous reads
INIT_ENV = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
LAUNCH_HINT = (
    "launch it with torchrun (torchrun --standalone --nproc_per_node=2 -m eventkit "
    "trainer.distributed=true ...) or with hydra/launcher=submitit_slurm_distributed"
)


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


def setup(cfg: Any) -> DataParallel | None:
    """The :class:`DataParallel` of a validated config, joining the process group when needed;
    None for a single-process run (training then runs in a group of one). ConfigError (one line,
    with the fix) when ``trainer.distributed=true`` has no launch environment or when several
    processes were launched without it."""
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


__all__ = [
    "INIT_ENV",
    "LAUNCH_HINT",
    "Launch",
    "enabled",
    "init_process_group",
    "is_main_process",
    "launch",
    "launch_rank",
    "quiet_unless_main",
    "setup",
    "shutdown",
]
