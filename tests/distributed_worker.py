"""One process of the 2-process gloo runs of test_distributed.py (started by
torch.multiprocessing with the environment torchrun would give it).

Every process runs the same scenarios one after the other in one process group and writes what
it saw to ``<report>/rank<r>.json``: each run's summary or one-line error, its thread count, and
every file-system write it made under ``root`` (recorded by an audit hook: opens for writing,
directory creation, renames, removals).
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path

WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
WRITE_EVENTS = ("os.mkdir", "os.rename", "os.replace", "os.remove", "os.rmdir", "shutil.copyfile", "os.truncate")


def _watch_writes(root: str, writes: list) -> None:
    def hook(event, args):
        if event == "open":
            path, mode, flags = args
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or bool((flags or 0) & WRITE_FLAGS)
        elif event in WRITE_EVENTS:
            path, writing = args[0], True
            if event == "os.mkdir" and os.path.isdir(str(path)):
                writing = False  # mkdir(exist_ok=True) of an existing directory creates nothing
        else:
            return
        if writing and isinstance(path, (str, bytes, os.PathLike)):
            text = os.path.abspath(os.fsdecode(path))
            if text.startswith(root):
                to = f" -> {os.fsdecode(args[1])}" if event in ("os.rename", "os.replace") else ""
                writes.append(f"{event} {text}{to}")

    sys.addaudithook(hook)


def main(rank: int, world: int, port: int, root: str, report: str, tiny: list[str], names: list | None = None) -> None:
    """torch.multiprocessing's entry point (the process index comes first: it is the rank);
    ``names``: the scenarios to run (all by default)."""
    os.environ.update(
        RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    )
    import torch

    from eventkit.running.pipeline import run
    from eventkit.training import launch as distributed
    from eventkit.running.config import compose

    writes: list[str] = []
    _watch_writes(os.path.abspath(root), writes)
    dist = [*tiny, "trainer.distributed=true"]
    scenarios = {
        "straight": (dist, "straight"),
        # a short last batch of 3 samples (3 groups: 1 + 2 on 2 processes) and of 8 (4 + 4)
        "uneven": ([*dist, "dataset.n_train=67"], "uneven"),
        "even": ([*dist, "dataset.n_train=72"], "even"),
        "first": ([*dist, "trainer.epochs=1"], "first"),
        "resumed": (
            [f"trainer.resume={Path(root) / 'first'}", "trainer.epochs=2", "trainer.distributed=true"],
            "resumed",
        ),
        "idle": ([*dist, "trainer.batch_size=1"], "idle"),
        "off": (tiny, "off"),
    }
    out: dict = {"rank": rank}
    try:
        for name, (overrides, directory) in scenarios.items():
            if names is not None and name not in names:
                continue
            try:
                summary = run(compose(overrides), Path(root) / directory)
                out[name] = {"summary": summary, "threads": torch.get_num_threads()}
            except ValueError as exc:  # ConfigError and the other input errors
                out[name] = {"error": str(exc)}
    except BaseException:
        out["crash"] = traceback.format_exc()
        raise
    finally:
        out["writes"] = writes
        distributed.shutdown()
        Path(report, f"rank{rank}.json").write_text(json.dumps(out, default=str))
