"""Sweep summary: one table per multirun, at the sweep root, best job first.

A Hydra callback (configured in conf/config.yaml, so it runs with every launcher and sweeper:
basic, joblib, submitit, Optuna) writes ``sweep_summary.csv`` and ``sweep_summary.md`` when the
sweep ends. ``python -m eventkit.sweep <sweep dir>`` rebuilds them, e.g. for SLURM sweeps whose
jobs finished after the launcher returned.

Where the jobs differ by ``seed=`` the summary also has a table over seeds: per group of jobs
with the same other overrides and numeric mode, the test accuracy of every seed, mean +- sample
sd, the lowest seed and the wall time -- the form of every accuracy claim in README.md. A group
with a failed job says so: a claim over fewer seeds than asked is another claim.
"""

from __future__ import annotations

import csv
import io
import json
import statistics
import sys
from pathlib import Path
from typing import Any

from eventkit.base.files import write_text
from eventkit.rundir.layout import check_unused, check_usable, existing_run_files, set_aside_notice

COLUMNS = ("test_accuracy", "best_val_accuracy", "last_test_accuracy", "epochs", "wall_time_s")
SORT_KEY = "test_accuracy"
NO_SUMMARY = "no summary.json: the job was killed or has not finished"
#: overrides that do not change a job's result, left out when jobs are grouped over seeds
NOT_RESULT = ("seed=", "trainer.progress=")

#: the failed jobs of the last sweep summarised in this process (read by ``eventkit.running.cli.main``
#: for its exit status: with joblib or submitit the jobs ran in other processes)
LAST_FAILED: list[dict[str, Any]] = []


def _overrides(job_dir: Path) -> list[str]:
    path = job_dir / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return []
    from omegaconf import OmegaConf

    return [str(o) for o in OmegaConf.load(path)]


def collect(sweep_dir: Path) -> list[dict[str, Any]]:
    """One row per job directory under ``sweep_dir`` (jobs that failed get status 'failed')."""
    rows = []
    for job_dir in sorted(
        (p for p in Path(sweep_dir).iterdir() if p.is_dir()),
        key=lambda p: (not p.name.isdigit(), int(p.name) if p.name.isdigit() else 0, p.name),
    ):
        if not (job_dir / ".hydra").is_dir():
            continue
        row: dict[str, Any] = {"job": job_dir.name, "overrides": " ".join(_overrides(job_dir))}
        row.update(_job_results(job_dir / "summary.json"))
        row["mode"] = _mode(job_dir / "manifest.json")
        rows.append(row)

    def rank(r):
        value = r.get(SORT_KEY)
        return (value is None, -(value or 0.0), r["job"])

    return sorted(rows, key=rank)


def _mode(manifest_path: Path) -> str | None:
    """The numeric mode (trainer.reproducible) a job ran in, from its manifest."""
    if not manifest_path.is_file():
        return None
    return (json.loads(manifest_path.read_text()).get("reproducible") or {}).get("mode")


def over_seeds(rows: list[dict]) -> list[str]:
    """Markdown lines: the jobs grouped by their overrides less ``seed=`` and by mode, one row per
    group with the test accuracy of every seed, mean +- sample sd (ddof 1), the lowest seed and the
    wall time (mean / max); [] where no job sets ``seed=``."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        overrides = r["overrides"].split()
        seed = next((o.split("=", 1)[1] for o in overrides if o.startswith("seed=")), None)
        rest = " ".join(sorted(o for o in overrides if not o.startswith(NOT_RESULT))) or "(defaults)"
        groups.setdefault((rest, r.get("mode") or "?"), []).append({**r, "seed": seed})
    if all(r["seed"] is None for g in groups.values() for r in g):
        return []
    lines = [
        "## Over seeds",
        "",
        "| overrides | mode | seeds | test accuracy per seed (%) | mean +- sd (%) | lowest (%) "
        "| wall time mean / max (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for (overrides, mode), group in groups.items():
        group.sort(key=lambda r: (r["seed"] is None, int(r["seed"]) if str(r["seed"]).isdigit() else 0))
        done = [r for r in group if r["status"] == "ok" and r.get("test_accuracy") is not None]
        accs = [100 * r["test_accuracy"] for r in done]
        walls = [r["wall_time_s"] for r in done if r.get("wall_time_s") is not None]
        failed = [str(r["seed"]) for r in group if r not in done]
        sd = f"{statistics.stdev(accs):.1f}" if len(accs) > 1 else "n/a"
        stats = f"{statistics.mean(accs):.1f} +- {sd} | {min(accs):.1f}" if accs else "n/a | n/a"
        per_seed = " / ".join(f"{a:.1f}" for a in accs) + (f" (failed: seed {', '.join(failed)})" if failed else "")
        wall = f"{statistics.mean(walls):.0f} / {max(walls):.0f}" if walls else ""
        seeds = ",".join(str(r["seed"]) for r in group)
        lines.append(f"| `{overrides}` | {mode} | {seeds} | {per_seed} | {stats} | {wall} |")
    return ["", *lines]


def _job_results(summary_path: Path) -> dict[str, Any]:
    """Status, metrics and reason of one job, from what its run recorded; a summary without a
    status predates statuses and belongs to a finished run."""
    if not summary_path.is_file():
        return {"status": "failed", "error": NO_SUMMARY}
    summary = json.loads(summary_path.read_text())
    status = summary.get("status", "ok")
    if status != "ok":
        return {"status": status, "error": summary.get("error") or "(no reason recorded)"}
    row: dict[str, Any] = {"status": status, **{key: summary.get(key) for key in COLUMNS}}
    for target, fields in (summary.get("deploy") or {}).items():
        for key, value in fields.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                row[f"{target}.{key}"] = value
    return row


def _columns(rows: list[dict]) -> list[str]:
    cols = ["job", "overrides", "status", *COLUMNS]
    for r in rows:
        cols += [k for k in r if k not in cols and k != "error"]
    return cols + (["error"] if any("error" in r for r in rows) else [])


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
    failed = sum(r["status"] != "ok" for r in rows)
    md = [
        f"# Sweep summary: {sweep_dir}",
        "",
        f"{len(rows)} jobs ({failed} failed), best {SORT_KEY} first.",
        "",
        "| " + " | ".join(cols) + " |",
        "|" + "---|" * len(cols),
    ]
    for r in rows:
        md.append("| " + " | ".join(_fmt(r.get(c)).replace("|", "\\|") for c in cols) + " |")
    md += over_seeds(rows)
    write_text(sweep_dir / "sweep_summary.md", "\n".join(md) + "\n")
    return rows


try:
    from hydra.experimental.callback import Callback
except ImportError:  # pragma: no cover - hydra is a dependency
    Callback = object  # type: ignore[misc,assignment]


class DirectoryGuard(Callback):  # type: ignore[misc]
    """Hydra callback: refuses a run or sweep directory that holds an earlier run or sweep before
    Hydra writes its own record (.hydra/) into it, so the earlier one stays intact."""

    def on_run_start(self, config: Any, **kwargs: Any) -> None:
        from eventkit.training.launch import is_main_process

        if not is_main_process():  # rank 0 checked the directory for every process (SameRunDir)
            return
        _refuse_used(lambda: check_usable(Path(config.hydra.run.dir)))
        run_dir, resume = Path(config.hydra.run.dir), config.get("trainer", {}).get("resume")
        aside = _refuse_used(lambda: check_unused(run_dir, resume=resume, hydra_record=True))
        if aside is not None:
            print(f"eventkit: NOTICE {set_aside_notice(aside)}", flush=True)

    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        _refuse_used(lambda: check_usable(Path(config.hydra.sweep.dir), key="hydra.sweep.dir"))
        _refuse_used(lambda: _check_sweep_dir_unused(Path(config.hydra.sweep.dir)))


class SweepSummary(Callback):  # type: ignore[misc]
    """Hydra callback: writes the sweep summary when a multirun ends and names the failed jobs."""

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if not sweep_dir.is_dir():
            return
        rows = write_summary(sweep_dir)
        best = next((r for r in rows if r.get(SORT_KEY) is not None), None)
        print(
            f"eventkit: sweep summary of {len(rows)} jobs in {sweep_dir / 'sweep_summary.md'}"
            + (f"; best {SORT_KEY} {best[SORT_KEY]:.4f} with {best['overrides'] or '(no overrides)'}" if best else ""),
            flush=True,
        )
        LAST_FAILED[:] = [r for r in rows if r["status"] != "ok"]
        if LAST_FAILED:
            lines = [f"eventkit: {len(LAST_FAILED)} of {len(rows)} jobs failed:"]
            lines += [f"  job {r['job']} ({r['overrides'] or 'no overrides'}): {r['error']}" for r in LAST_FAILED]
            print("\n".join(lines), file=sys.stderr, flush=True)


def _check_sweep_dir_unused(sweep_dir: Path) -> None:
    found = existing_run_files(sweep_dir)
    if found:
        shown = ", ".join(found[:4]) + (", ..." if len(found) > 4 else "")
        raise ValueError(
            f"hydra.sweep.dir: {sweep_dir} already holds a sweep ({shown}). " f"Fix: choose another hydra.sweep.dir"
        )


def _refuse_used(check: Any) -> Any:
    """``check()``'s result; stop with one line (exit status 2) when it finds the directory in
    use. Hydra has not written into it yet at this point; a directory whose name cannot be
    resolved here is left to the run's own check."""
    try:
        return check()
    except ValueError as exc:
        print(f"eventkit: error: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
    except Exception:
        return None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or not Path(argv[0]).is_dir():
        print("usage: python -m eventkit.sweep <sweep directory>", file=sys.stderr)
        return 2
    rows = write_summary(Path(argv[0]))
    print((Path(argv[0]) / "sweep_summary.md").read_text())
    return 0 if rows else 1
