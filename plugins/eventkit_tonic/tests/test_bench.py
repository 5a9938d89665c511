"""The data benchmark runs end to end on a small workload and reports every stage."""

from __future__ import annotations

import json

import pytest

from eventkit_tonic import bench


@pytest.mark.parametrize("in_memory", [True, False])
def test_bench_reports_every_stage(tmp_path, capsys, in_memory):
    out = tmp_path / "bench.json"
    args = [
        "--samples",
        "300",
        "--shd-samples",
        "120",
        "--engine-repeats",
        "0",
        "--events-per-sample",
        "2000",
        "--workdir",
        str(tmp_path),
        "--json",
        str(out),
    ] + (["--in-memory"] if in_memory else [])
    assert bench.main(args) == 0
    r = json.loads(out.read_text())
    assert r["samples"] == 300
    pre = r["preprocess"]
    assert pre["preprocess_s"] > 0 and 0 < pre["spikes"] <= pre["raw_events"]
    assert 300 * 2000 * 0.8 < pre["raw_events"] < 300 * 2000 * 1.2
    assert r["cache"]["load_s"] > 0 and r["cache"]["disk_mb"] > 0
    assert r["shd_epoch_shift_blend"]["samples_out"] == 240  # blend doubles the epoch
    assert r["ssc_epoch_shift"]["samples_out"] == 300
    text = capsys.readouterr().out
    assert "SSC-sized preprocessing" in text and "cache load" in text
    assert list(tmp_path.iterdir()) == [out]  # scratch files are removed


def test_bench_rejects_bad_arguments():
    with pytest.raises(SystemExit):
        bench.main(["--samples", "0"])
