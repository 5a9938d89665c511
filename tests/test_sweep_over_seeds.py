"""The sweep summary's table over seeds, the command behind README's mean +- sd accuracy claims:
per-seed figures, mean and sample sd, jobs grouped by their overrides less the seed and by mode,
and a failed job named in its group (a claim over fewer seeds than asked is another claim)."""

from __future__ import annotations

import json
from pathlib import Path

from eventkit.running.sweep import main, write_summary


def _job(root: Path, name: str, overrides: list[str], acc: float | None, mode: str = "strict", wall: float = 10.0):
    job = root / name
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    (job / "manifest.json").write_text(json.dumps({"reproducible": {"mode": mode}}))
    if acc is not None:
        (job / "summary.json").write_text(json.dumps({"status": "ok", "test_accuracy": acc, "wall_time_s": wall}))


def _seed_rows(sweep: Path) -> list[str]:
    text = (sweep / "sweep_summary.md").read_text()
    assert "## Over seeds" in text
    return [line for line in text.split("## Over seeds", 1)[1].splitlines() if line.startswith("| `")]


def test_mean_and_sample_sd_per_group_of_overrides(tmp_path):
    for i, acc in enumerate((0.90, 0.92, 0.94)):
        _job(tmp_path, str(i), [f"seed={i}", "trainer.progress=false", "x=1"], acc, wall=10.0 + i)
    _job(tmp_path, "3", ["seed=0", "x=2"], 0.5)
    write_summary(tmp_path)
    rows = _seed_rows(tmp_path)
    assert rows[0] == "| `x=1` | strict | 0,1,2 | 90.0 / 92.0 / 94.0 | 92.0 +- 2.0 | 90.0 | 11 / 12 |"
    assert rows[1] == "| `x=2` | strict | 0 | 50.0 | 50.0 +- n/a | 50.0 | 10 / 10 |"


def test_modes_are_kept_apart(tmp_path):
    _job(tmp_path, "0", ["seed=3"], 0.97, mode="fast")
    _job(tmp_path, "1", ["seed=4"], 0.95)
    write_summary(tmp_path)
    assert [r.split(" | ")[1:3] for r in _seed_rows(tmp_path)] == [["fast", "3"], ["strict", "4"]]


def test_a_failed_job_is_named_in_its_group(tmp_path, capsys):
    _job(tmp_path, "0", ["seed=0"], 0.9)
    _job(tmp_path, "1", ["seed=1"], None)
    assert main([str(tmp_path)]) == 0
    (row,) = _seed_rows(tmp_path)
    assert "| 0,1 | 90.0 (failed: seed 1) | 90.0 +- n/a |" in row
    assert "1 failed" in capsys.readouterr().out


def test_no_table_where_no_job_sets_a_seed(tmp_path):
    _job(tmp_path, "0", ["x=1"], 0.9)
    _job(tmp_path, "1", ["x=2"], 0.8)
    write_summary(tmp_path)
    assert "Over seeds" not in (tmp_path / "sweep_summary.md").read_text()
