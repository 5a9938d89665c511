"""What the README's main command costs: ``python -m eventkit.bench.default_run [--seeds 0,1]
[--json PATH]``.

Runs ``python -m eventkit trainer.reproducible=strict seed=S`` (the embedded default: Yin-Yang,
400 LIF neurons) as a newcomer does, each in a fresh process, twice per seed: first with an
empty numba kernel cache (``NUMBA_CACHE_DIR`` in a new temporary directory: every kernel is
compiled, as on a first run after install), then again with that cache (kernels loaded). Prints
per run the wall time of the whole command (interpreter start to exit), the run's own wall and
training times (``summary.json``) and its test accuracy, and writes them as JSON. The wall time
depends on what else the machine is doing; run it with the machine to itself.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run_once(seed: int, cache: str, run_dir: Path) -> dict:
    """One ``python -m eventkit`` in its own process: wall seconds, and what its summary records."""
    env = {**os.environ, "NUMBA_CACHE_DIR": cache}
    cmd = [
        sys.executable,
        "-m",
        "eventkit",
        "trainer.progress=false",
        "trainer.reproducible=strict",
        f"seed={seed}",
        f"hydra.run.dir={run_dir}",
    ]
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    summary = json.loads((run_dir / "summary.json").read_text())
    return dict(
        seed=seed,
        wall_s=wall,
        run_s=float(summary["wall_time_s"]),
        train_s=float(summary["train_time_s"]),
        test_accuracy=float(summary["test_accuracy"]),
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eventkit.bench.default_run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="0", help="comma-separated seeds (seed 0 is the plain command)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)
    try:
        seeds = [int(s) for s in args.seeds.split(",")]
    except ValueError:
        parser.error(f"--seeds: expected comma-separated integers, got {args.seeds!r}")
    rows = []
    print(f"{'seed':>4} {'kernels':>9} {'wall s':>8} {'run s':>8} {'train s':>8} {'test acc':>9}")
    for seed in seeds:
        with tempfile.TemporaryDirectory(prefix="eventkit-default-run-") as tmp:
            cache = os.path.join(tmp, "numba-cache")
            for kernels in ("compiled", "cached"):
                row = dict(kernels=kernels, **run_once(seed, cache, Path(tmp) / kernels))
                rows.append(row)
                print(
                    f"{seed:>4} {kernels:>9} {row['wall_s']:>8.1f} {row['run_s']:>8.1f} {row['train_s']:>8.1f} "
                    f"{100 * row['test_accuracy']:>8.1f}%"
                )
    print(
        f"(cpus {os.cpu_count()}; wall = the whole command, interpreter start to exit; run = the run's own "
        "wall time, summary.json)"
    )
    if args.json:
        from .common import write_json

        write_json(args.json, rows, benchmark="default_run")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
