"""tools/seed_stats.py, the command behind README's mean +- sd accuracy claims: per-seed figures,
mean and sample sd, grouping by the overrides less the seed, and a job without a summary named and
failing the exit status (a claim over fewer seeds than asked would be another claim)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import seed_stats  # noqa: E402


def _job(root: Path, name: str, overrides: list[str], acc: float | None, mode: str = "strict", wall: float = 10.0):
    job = root / name
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    (job / "manifest.json").write_text(json.dumps({"reproducible": {"mode": mode}}))
    if acc is not None:
        (job / "summary.json").write_text(json.dumps({"status": "ok", "test_accuracy": acc, "wall_time_s": wall}))


def test_mean_and_sample_sd_per_group_of_overrides(tmp_path, capsys):
    for i, acc in enumerate((0.90, 0.92, 0.94)):
        _job(tmp_path, str(i), [f"seed={i}", "trainer.progress=false", "x=1"], acc, wall=10.0 + i)
    _job(tmp_path, "3", ["seed=0", "x=2"], 0.5)
    assert seed_stats.main([str(tmp_path)]) == 0
    rows = capsys.readouterr().out.splitlines()[2:]
    assert rows[0] == "| `x=1` | strict | 0,1,2 | 90.0 / 92.0 / 94.0 | 92.0 +- 2.0 | 90.0 | 11 / 12 |"
    assert rows[1] == "| `x=2` | strict | 0 | 50.0 | 50.0 +- n/a | 50.0 | 10 / 10 |"


def test_a_run_directory_counts_as_one_job_and_modes_are_kept_apart(tmp_path, capsys):
    _job(tmp_path, "run", ["seed=3"], 0.97, mode="fast")
    _job(tmp_path / "sweep", "0", ["seed=4"], 0.95)
    assert seed_stats.main([str(tmp_path / "run"), str(tmp_path / "sweep")]) == 0
    rows = capsys.readouterr().out.splitlines()[2:]
    assert [r.split(" | ")[1:3] for r in rows] == [["fast", "3"], ["strict", "4"]]


def test_an_unfinished_job_is_named_and_fails(tmp_path, capsys):
    _job(tmp_path, "0", ["seed=0"], 0.9)
    _job(tmp_path, "1", ["seed=1"], None)
    assert seed_stats.main([str(tmp_path)]) == 1
    out = capsys.readouterr()
    assert "1 has no finished summary.json" in out.err
    assert "| 0 | 90.0 |" in out.out


def test_not_a_directory_is_one_line(tmp_path, capsys):
    assert seed_stats.main([str(tmp_path / "missing")]) == 2
    assert "is not a directory" in capsys.readouterr().err
