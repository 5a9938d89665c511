"""Multirun sweeps with each launcher and the Optuna sweeper; the summary at the sweep root."""

import csv
import json
import os
import subprocess
import sys

import pytest

from eventkit.plugin.testing import tiny_run
from eventkit.running.sweep import write_summary

TINY = tiny_run()


def multirun(tmp_path, *args):
    """Run a sweep; returns (sweep dir, completed process with ``pid``: the sweep's main process)."""
    sweep = tmp_path / "sweep"
    cmd = [sys.executable, "-m", "eventkit", "-m", *TINY, *args, f"hydra.sweep.dir={sweep}"]
    with subprocess.Popen(
        cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ)
    ) as proc:
        try:
            stdout, stderr = proc.communicate(timeout=600)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    out = subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)
    out.pid = proc.pid
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return sweep, out


def _check_summary(sweep, n_jobs, varied):
    with open(sweep / "sweep_summary.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == n_jobs
    assert all(r["status"] == "ok" for r in rows)
    accs = [float(r["test_accuracy"]) for r in rows]
    assert accs == sorted(accs, reverse=True)  # best first
    for key in varied:
        assert all(key in r["overrides"] for r in rows)
    md = (sweep / "sweep_summary.md").read_text()
    jobs_table = md.split("## Over seeds")[0]
    assert jobs_table.count("\n| ") == n_jobs + 1  # header + one row per job
    for r in rows:
        summary = json.loads((sweep / r["job"] / "summary.json").read_text())
        assert float(r["test_accuracy"]) == pytest.approx(summary["test_accuracy"])
    return rows


def test_basic_launcher_grid(tmp_path):
    sweep, out = multirun(tmp_path, "seed=1,2", "optimizer.lr=1e-3,3e-3")
    rows = _check_summary(sweep, 4, ["seed=", "optimizer.lr="])
    pids = {json.loads((sweep / r["job"] / "manifest.json").read_text())["machine"]["pid"] for r in rows}
    assert pids == {out.pid}  # the basic launcher runs the jobs one after another in its own process
    assert {r["overrides"].split()[-2:][0] for r in rows} == {"seed=1", "seed=2"}
    assert "sweep summary of 4 jobs" in out.stdout


def test_joblib_launcher_runs_jobs_in_worker_processes(tmp_path):
    sweep, out = multirun(tmp_path, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "seed=1,2")
    _check_summary(sweep, 2, ["seed="])
    pids = {json.loads((sweep / j / "manifest.json").read_text())["machine"]["pid"] for j in ("0", "1")}
    assert len(pids) == 2 and out.pid not in pids  # two worker processes, not the sweep's own


@pytest.mark.slow
def test_submitit_local_launcher(tmp_path):
    sweep, _ = multirun(tmp_path, "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10", "seed=1,2")
    _check_summary(sweep, 2, ["seed="])


@pytest.mark.slow
def test_optuna_sweeper_from_packaged_config(tmp_path):
    sweep, out = multirun(tmp_path, "hparams_search=yinyang_optuna", "hydra.sweeper.n_trials=2")
    _check_summary(sweep, 2, ["optimizer.lr=", "network.hidden="])
    assert "Best parameters" in out.stdout or (sweep / "optimization_results.yaml").exists()


def test_summary_marks_failed_jobs_and_can_be_rebuilt(tmp_path):
    for job, acc in (("0", 0.5), ("1", None), ("2", 0.9)):
        d = tmp_path / job
        (d / ".hydra").mkdir(parents=True)
        (d / ".hydra" / "overrides.yaml").write_text(f"- seed={job}\n")
        if acc is not None:
            (d / "summary.json").write_text(
                json.dumps(
                    {
                        "test_accuracy": acc,
                        "best_val_accuracy": acc,
                        "epochs": 1,
                        "wall_time_s": 1.0,
                        "deploy": {"cpu": {"parameters": 10}},
                    }
                )
            )
    rows = write_summary(tmp_path)
    assert [r["job"] for r in rows] == ["2", "0", "1"]
    assert rows[-1]["status"] == "failed" and rows[0]["cpu.parameters"] == 10
    out = subprocess.run([sys.executable, "-m", "eventkit.sweep", str(tmp_path)], capture_output=True, text=True)
    assert out.returncode == 0 and "seed=2" in out.stdout
