"""The wandb logger plugin: offline runs record config and metrics; a missing wandb is recorded in
the run dir and never stops training; the CLI lists it."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from eventkit.plugin.testing import run_cli, tiny_run

TINY = tiny_run(epochs=2)


def test_help_and_plugin_list_name_the_wandb_logger():
    helped = run_cli("--help", timeout=300)
    assert helped.returncode == 0 and "logger: none, wandb" in helped.stdout, helped.stderr
    listed = run_cli("--plugins", timeout=300)
    assert any(
        line.split()[:2] == ["logger", "wandb"] and "eventkit_wandb" in line for line in listed.stdout.splitlines()
    ), listed.stdout


def test_wandb_logger_offline_records_config_and_metrics(tmp_path):
    pytest.importorskip("wandb")
    run = tmp_path / "run"
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_DIR": str(tmp_path)}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "eventkit",
            *TINY,
            "logger=wandb",
            "logger.project=eventkit-test",
            f"hydra.run.dir={run}",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    offline = list((run / "wandb").glob("offline-run-*"))
    assert len(offline) == 1, list(run.rglob("*"))
    config, history, summary = _read_wandb_file(next(offline[0].glob("*.wandb")))
    assert config["dataset"]["name"] == "yinyang" and config["dataset"]["n_train"] == 120  # resolved config
    ours = json.loads((run / "summary.json").read_text())
    assert summary["test_accuracy"] == pytest.approx(ours["test_accuracy"])
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    for row in metrics:  # every epoch's metrics were logged at its step
        logged = history[row["epoch"]]
        for key in ("train_loss", "train_accuracy", "val_accuracy", "lr"):
            assert logged[key] == pytest.approx(row[key]), key


def _records(raw: bytes):
    """Records of a wandb transaction log (.wandb): a 7-byte file header, then LevelDB-style log
    blocks of 32 KiB, each record chunk prefixed by crc32 (4), length (2), type (1: full, 2: first,
    3: middle, 4: last)."""
    import struct

    pos, block, parts = 7, 32768, b""
    while pos + 7 <= len(raw):
        if block - pos % block < 7:
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", raw[pos : pos + 7])
        data, pos = raw[pos + 7 : pos + 7 + length], pos + 7 + length
        if kind == 0:
            break
        if kind == 1:
            yield data
        elif kind == 2:
            parts = data
        elif kind == 3:
            parts += data
        elif kind == 4:
            yield parts + data


def _read_wandb_file(path):
    from wandb.proto import wandb_internal_pb2

    config, history, summary = {}, {}, {}
    for data in _records(Path(path).read_bytes()):
        rec = wandb_internal_pb2.Record()
        rec.ParseFromString(data)
        kind = rec.WhichOneof("record_type")
        if kind == "run":
            config.update({u.key: json.loads(u.value_json) for u in rec.run.config.update})
        elif kind == "config":
            config.update({u.key: json.loads(u.value_json) for u in rec.config.update if u.key})
        elif kind == "history":
            row = {(i.key or "/".join(i.nested_key)): json.loads(i.value_json) for i in rec.history.item}
            history.setdefault(row.get("_step"), {}).update(row)
        elif kind == "summary":
            summary.update({(u.key or "/".join(u.nested_key)): json.loads(u.value_json) for u in rec.summary.update})
    return config, history, summary


def test_logger_that_fails_to_start_is_recorded_in_the_run_dir(tmp_path):
    """wandb missing: the run goes on, and its manifest and summary say that nothing was logged."""
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "wandb.py").write_text("raise ModuleNotFoundError(\"No module named 'wandb'\", name='wandb')\n")
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(fake), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run(
        [sys.executable, "-m", "eventkit", *TINY, "logger=wandb", f"hydra.run.dir={run}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads((run / "summary.json").read_text())
    manifest = json.loads((run / "manifest.json").read_text())
    assert summary["status"] == "ok"
    for record in (summary, manifest):
        assert "logger 'wandb' failed in start()" in record["logger_error"], record
        assert "No module named 'wandb'" in record["logger_error"]
