"""Mean +- sd of a seed sweep's test accuracy: the form of every accuracy claim in README.md.

    python -m eventkit -m seed=0,1,2,3,4 trainer.reproducible=strict hydra.sweep.dir=outputs/seeds
    python tools/seed_stats.py outputs/seeds [more sweep dirs ...]

Reads each job's ``summary.json`` (test accuracy, wall time) and ``manifest.json`` (the mode it
ran in: ``trainer.reproducible``), groups the jobs of all given sweep directories by their
overrides less ``seed=``, and prints one markdown row per group: the accuracy of every seed, mean
+- sample standard deviation (ddof 1), the lowest seed, and the wall time per run (mean / max,
kernel compilation included). A job without a finished summary is named and makes the exit status
1, since a claim over fewer seeds than asked would be another claim.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path


#: overrides that do not change a run's result: the seed (the rows are over seeds) and the display
IGNORED = ("seed=", "trainer.progress=")


def _overrides(job: Path) -> list[str]:
    path = job / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return []
    from omegaconf import OmegaConf

    return [str(o) for o in OmegaConf.load(path)]


def jobs(sweep_dir: Path) -> list[dict]:
    """One entry per job directory of a sweep (or the run directory itself, given one): seed,
    other overrides, mode, accuracy, wall time."""
    out = []
    dirs = [sweep_dir] if (sweep_dir / ".hydra").is_dir() else sorted(p for p in sweep_dir.iterdir() if p.is_dir())
    for job in (d for d in dirs if (d / ".hydra").is_dir()):
        overrides = _overrides(job)
        seed = next((o.split("=", 1)[1] for o in overrides if o.startswith("seed=")), "0")
        rest = " ".join(sorted(o for o in overrides if not o.startswith(IGNORED)))
        summary_path, manifest_path = job / "summary.json", job / "manifest.json"
        summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
        manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
        ok = summary.get("status", "ok") == "ok" and summary.get("test_accuracy") is not None
        out.append(
            {
                "job": str(job),
                "seed": int(seed),
                "overrides": rest or "(defaults)",
                "mode": (manifest.get("reproducible") or {}).get("mode", "?"),
                "accuracy": summary.get("test_accuracy") if ok else None,
                "wall_time_s": summary.get("wall_time_s"),
            }
        )
    return out


def table(entries: list[dict]) -> list[str]:
    """Markdown rows: per-seed accuracies, mean +- sd, lowest, wall time, per group of overrides."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for e in entries:
        groups.setdefault((e["overrides"], e["mode"]), []).append(e)
    lines = [
        "| overrides | mode | seeds | test accuracy per seed (%) | mean +- sd (%) | lowest (%) "
        "| wall time mean / max (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for (overrides, mode), group in groups.items():
        group.sort(key=lambda e: e["seed"])
        accs = [100 * e["accuracy"] for e in group]
        walls = [e["wall_time_s"] for e in group if e["wall_time_s"] is not None]
        sd = f"{statistics.stdev(accs):.1f}" if len(accs) > 1 else "n/a"
        lines.append(
            f"| `{overrides}` | {mode} | {','.join(str(e['seed']) for e in group)} | "
            + " / ".join(f"{a:.1f}" for a in accs)
            + f" | {statistics.mean(accs):.1f} +- {sd} | {min(accs):.1f} | "
            + (f"{statistics.mean(walls):.0f} / {max(walls):.0f}" if walls else "")
            + " |"
        )
    return lines


def main(argv: list[str]) -> int:
    if not argv or any(a.startswith("-") for a in argv):
        print("usage: python tools/seed_stats.py <sweep or run directory> [...]", file=sys.stderr)
        return 2
    entries = []
    for arg in argv:
        if not Path(arg).is_dir():
            print(f"seed_stats: {arg} is not a directory (a sweep's hydra.sweep.dir)", file=sys.stderr)
            return 2
        entries += jobs(Path(arg))
    missing = [e for e in entries if e["accuracy"] is None]
    for e in missing:
        print(f"seed_stats: {e['job']} has no finished summary.json; rerun it or leave it out", file=sys.stderr)
    done = [e for e in entries if e["accuracy"] is not None]
    if not done:
        print("seed_stats: no finished jobs", file=sys.stderr)
        return 1
    print("\n".join(table(done)))
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
