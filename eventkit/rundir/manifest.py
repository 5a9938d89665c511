"""manifest.json: versions, machine and git state of a run -- what is needed to reproduce or
compare it. :class:`eventkit.rundir.RunDir` writes it at the start, after each stage and at the end."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import torch

from eventkit.base import reproducible


def now() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _git_commit() -> dict:
    here = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10)
        if commit.returncode != 0:
            return {"commit": None}
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=10,
        )
        return {"commit": commit.stdout.strip(), "dirty": bool(dirty.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None}


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def manifest(seed: int | None, plugins: list[dict]) -> dict:
    """Versions, machine and git state: what is needed to reproduce or compare a run."""
    from eventkit.base.version import __version__

    deps = ["torch", "numpy", "numba", "hydra-core", "omegaconf", "pluggy", "safetensors", "tonic", "wandb"]
    return {
        "eventkit": __version__,
        "python": sys.version.split()[0],
        "dependencies": {d: _version(d) for d in deps},
        "plugins": plugins,
        "git": _git_commit(),
        "seed": seed,
        "reproducible": reproducible.record(),
        "machine": {
            "hostname": socket.gethostname(),
            "platform": platform.platform(),
            "processor": platform.machine(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "pid": os.getpid(),
        },
        "argv": sys.argv,
        "start_time": now(),
        "end_time": None,
        "status": None,
        "stages_s": {},
    }
