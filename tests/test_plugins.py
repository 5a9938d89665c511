"""Plugins for real: the wandb logger (offline) and the example plugin installed as its own package."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TINY = ["dataset.n_train=120", "dataset.n_val=40", "dataset.n_test=40", "network.hidden=20",
        "network.init.ff_mean=3.0", "network.init.ff_std=1.0", "trainer.epochs=2", "trainer.batch_size=40",
        "trainer.progress=false"]


def test_wandb_logger_offline_records_config_and_metrics(tmp_path):
    pytest.importorskip("wandb")
    run = tmp_path / "run"
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_DIR": str(tmp_path)}
    out = subprocess.run([sys.executable, "-m", "eventkit", *TINY, "logger=wandb", "logger.project=eventkit-test",
                          f"hydra.run.dir={run}"], cwd=tmp_path, capture_output=True, text=True, timeout=600,
                         env=env)
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
        _, length, kind = struct.unpack("<IHB", raw[pos:pos + 7])
        data, pos = raw[pos + 7:pos + 7 + length], pos + 7 + length
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


def test_logger_failure_never_kills_training(tmp_path, capsys):
    from eventkit.components import GuardedLogger

    class Broken:
        def start(self, run_dir, config):
            raise ConnectionError("no network")

        def log(self, metrics, step):
            raise AssertionError("must not be called after a failure")

        def finish(self, summary):
            raise AssertionError("must not be called after a failure")

    logger = GuardedLogger(Broken(), "broken")
    logger.start(tmp_path, {})
    logger.log({"a": 1}, 1)
    logger.finish({})
    assert "logger 'broken' failed in start()" in capsys.readouterr().err


def test_logger_that_fails_to_start_is_recorded_in_the_run_dir(tmp_path):
    """wandb missing: the run goes on, and its manifest and summary say that nothing was logged."""
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "wandb.py").write_text("raise ModuleNotFoundError(\"No module named 'wandb'\", name='wandb')\n")
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(fake), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-m", "eventkit", *TINY, "logger=wandb", f"hydra.run.dir={run}"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=600, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads((run / "summary.json").read_text())
    manifest = json.loads((run / "manifest.json").read_text())
    assert summary["status"] == "ok"
    for record in (summary, manifest):
        assert "logger 'wandb' failed in start()" in record["logger_error"], record
        assert "No module named 'wandb'" in record["logger_error"]


def test_logger_failure_after_the_summary_updates_it(tmp_path):
    from eventkit.components import GuardedLogger
    from eventkit.rundir import RunDir

    class FailsAtFinish:
        def start(self, run_dir, config):
            pass

        def finish(self, summary):
            raise ConnectionError("no network")

    rd = RunDir(tmp_path)
    rd.start_manifest(0, [])
    logger = GuardedLogger(FailsAtFinish(), "flaky", rd.record_logger_error)
    logger.start(tmp_path, {})
    rd.write_summary({"status": "ok"})
    logger.finish({})
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "ok" and "failed in finish(): ConnectionError: no network" in summary["logger_error"]
    assert json.loads((tmp_path / "manifest.json").read_text())["logger_error"] == summary["logger_error"]


def test_example_plugin_installed_as_separate_distribution(tmp_path):
    """pip-installs examples/eventkit_example (its own pyproject) into a separate directory and
    runs eventkit with its dataset selected; the core is not touched."""
    target = tmp_path / "site"
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(target),
                          str(REPO / "examples" / "eventkit_example")], capture_output=True, text=True, timeout=600)
    assert pip.returncode == 0, pip.stderr[-3000:]
    assert list(target.glob("eventkit_example-*.dist-info"))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), os.environ.get("PYTHONPATH", "")])}
    listing = subprocess.run([sys.executable, "-m", "eventkit", "--plugins"], capture_output=True, text=True,
                             timeout=300, env=env, cwd=tmp_path)
    line = next(l for l in listing.stdout.splitlines() if l.split()[:2] == ["dataset", "two_moons"])
    assert "eventkit-example 0.1.0" in line or "eventkit_example 0.1.0" in line
    run = tmp_path / "run"
    out = subprocess.run([sys.executable, "-m", "eventkit", "dataset=two_moons", "dataset.n_train=200",
                          "dataset.n_val=50", "dataset.n_test=50", "network.hidden=20", "network.init.ff_mean=3.0",
                          "trainer.epochs=2", "trainer.progress=false", f"hydra.run.dir={run}"],
                         capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["epochs"] == 2
    assert "name: two_moons" in (run / "config_resolved.yaml").read_text()
    # with the plugin disabled by name the option does not exist (also when the example is
    # installed in this environment, as the README suggests: the test does not depend on it)
    off = {**os.environ, "EVENTKIT_DISABLE_PLUGINS": "example"}
    plain = subprocess.run([sys.executable, "-m", "eventkit", "dataset=two_moons", "--cfg", "job"],
                           capture_output=True, text=True, timeout=300, cwd=tmp_path, env=off)
    assert plain.returncode != 0 and "dataset=two_moons: no such option" in plain.stderr
