"""Sweep summary: one table per multirun, at the sweep root, best job first.

A Hydra callback (configured in conf/config.yaml, so it runs with every launcher and sweeper:
basic, joblib, submitit, Optuna) writes ``sweep_summary.csv`` and ``sweep_summary.md`` when the
sweep ends. ``python -m eventkit.sweep <sweep dir>`` rebuilds them, e.g. for SLURM sweeps whose
jobs finished after the launcher returned.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path
from typing import Any

from eventkit.rundir import write_text

COLUMNS = ("test_accuracy", "best_val_accuracy", "last_test_accuracy", "epochs", "wall_time_s")
SORT_KEY = "test_accuracy"


def _overrides(job_dir: Path) -> list[str]:
    path = job_dir / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return []
    from omegaconf import OmegaConf

    return [str(o) for o in OmegaConf.load(path)]


def collect(sweep_dir: Path) -> list[dict[str, Any]]:
    """One row per job directory under ``sweep_dir`` (jobs that failed get status 'failed')."""
    rows = []
    for job_dir in sorted((p for p in Path(sweep_dir).iterdir() if p.is_dir()),
                          key=lambda p: (not p.name.isdigit(), int(p.name) if p.name.isdigit() else 0, p.name)):
        if not (job_dir / ".hydra").is_dir():
            continue
        row: dict[str, Any] = {"job": job_dir.name, "overrides": " ".join(_overrides(job_dir))}
        summary_path = job_dir / "summary.json"
        if summary_path.is_file():
            summary = json.loads(summary_path.read_text())
            row["status"] = "ok"
            for key in COLUMNS:
                row[key] = summary.get(key)
            for target, fields in (summary.get("deploy") or {}).items():
                for key, value in fields.items():
                    if isinstance(value, (int, float)) and not isinstance(value, bool):
                        row[f"{target}.{key}"] = value
        else:
            row["status"] = "failed"
        rows.append(row)

    def rank(r):
        value = r.get(SORT_KEY)
        return (value is None, -(value or 0.0), r["job"])

    return sorted(rows, key=rank)


def _columns(rows: list[dict]) -> list[str]:
    cols = ["job", "overrides", "status", *COLUMNS]
    for r in rows:
        cols += [k for k in r if k not in cols]
    return cols


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def write_summary(sweep_dir: Path) -> list[dict]:
    """Write sweep_summary.csv and sweep_summary.md in ``sweep_dir``; return the rows."""
    sweep_dir = Path(sweep_dir)
    rows = collect(sweep_dir)
    cols = _columns(rows)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore")
    writer.writeheader()
    for r in rows:
        writer.writerow({c: r.get(c) for c in cols})
    write_text(sweep_dir / "sweep_summary.csv", buf.getvalue())
    md = [f"# Sweep summary: {sweep_dir}", "", f"{len(rows)} jobs, best {SORT_KEY} first.", "",
          "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        md.append("| " + " | ".join(_fmt(r.get(c)).replace("|", "\\|") for c in cols) + " |")
    write_text(sweep_dir / "sweep_summary.md", "\n".join(md) + "\n")
    return rows


try:
    from hydra.experimental.callback import Callback
except ImportError:  # pragma: no cover - hydra is a dependency
    Callback = object  # type: ignore[misc,assignment]


class SweepSummary(Callback):  # type: ignore[misc]
    """Hydra callback: writes the sweep summary when a multirun ends."""

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if not sweep_dir.is_dir():
            return
        rows = write_summary(sweep_dir)
        best = next((r for r in rows if r.get(SORT_KEY) is not None), None)
        print(f"eventkit: sweep summary of {len(rows)} jobs in {sweep_dir / 'sweep_summary.md'}"
              + (f"; best {SORT_KEY} {best[SORT_KEY]:.4f} with {best['overrides'] or '(no overrides)'}" if best else ""),
              flush=True)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or not Path(argv[0]).is_dir():
        print("usage: python -m eventkit.sweep <sweep directory>", file=sys.stderr)
        return 2
    rows = write_summary(Path(argv[0]))
    print((Path(argv[0]) / "sweep_summary.md").read_text())
    return 0 if rows else 1


if __name__ == "__main__":
    sys.exit(main())
