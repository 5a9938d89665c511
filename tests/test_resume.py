"""trainer.resume=DIR continues the config DIR recorded, refuses typed changes to it, extends a run
only when its schedule allows, and says that it resumed."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from eventkit.plugin.testing import tiny_run
from eventkit.running.pipeline import run
from eventkit.running.config import ConfigError, compose
from eventkit.rundir.layout import RunDir

TINY = [o for o in tiny_run() if not o.startswith("trainer.epochs=")]
ORIGINAL = [*TINY, "optimizer.lr=0.05", "scheduler=constant"]  # both differ from the defaults


def _metrics(path):
    return [json.loads(line) for line in (Path(path) / "metrics.jsonl").read_text().splitlines()]


def _without_time(rows):
    return [{k: v for k, v in r.items() if k != "epoch_time_s"} for r in rows]


def _snapshot(path: Path) -> dict:
    return {p.relative_to(path).as_posix(): p.read_bytes() for p in path.rglob("*") if p.is_file()}


def _resume(directory, *overrides):
    """What ``python -m eventkit trainer.resume=DIR <overrides>`` passes to run()."""
    typed = [f"trainer.resume={directory}", *overrides]
    return compose(typed), typed


@pytest.fixture(scope="module")
def killed(tmp_path_factory):
    """A 3-epoch run stopped after its second epoch (checkpoint and metrics of epochs 1-2)."""
    path = tmp_path_factory.mktemp("resume") / "killed"
    append = RunDir.append_metrics

    def stop_after_two(self, row):
        append(self, row)
        if len(self.metrics) == 2:
            raise KeyboardInterrupt

    RunDir.append_metrics = stop_after_two
    try:
        with pytest.raises(KeyboardInterrupt):
            run(compose([*ORIGINAL, "trainer.epochs=3"]), path)
    finally:
        RunDir.append_metrics = append
    assert [r["epoch"] for r in _metrics(path)] == [1, 2]
    return path


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished 2-epoch run."""
    path = tmp_path_factory.mktemp("resume") / "finished"
    run(compose([*ORIGINAL, "trainer.epochs=2"]), path)
    return path


def test_resume_without_overrides_continues_the_recorded_config(killed, tmp_path, capsys):
    cfg, typed = _resume(killed)
    assert cfg.optimizer.lr != 0.05 and cfg.scheduler.name != "constant"  # the defaults differ
    summary = run(cfg, tmp_path / "r", typed)
    ran = OmegaConf.load(tmp_path / "r" / "config_resolved.yaml")
    assert ran.optimizer.lr == 0.05 and ran.scheduler.name == "constant" and ran.trainer.epochs == 3
    assert ran.dataset.n_train == 120 and ran.network.hidden == 20
    assert ran.trainer.resume == str(killed)
    rows = _metrics(tmp_path / "r")
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert [r["lr"] for r in rows] == [0.05, 0.05, 0.05]
    assert _without_time(rows[:2]) == _without_time(_metrics(killed))
    assert summary["resumed_from"] == str(killed) and summary["epochs"] == 3
    assert json.loads((tmp_path / "r" / "summary.json").read_text())["resumed_from"] == str(killed)
    assert f"eventkit: resuming {killed} at epoch 3 of 3 with its recorded config\n" in capsys.readouterr().out


def test_python_call_takes_only_the_allowed_keys_from_cfg(killed, tmp_path):
    cfg = compose([f"trainer.resume={killed}", "trainer.epochs=3", "optimizer.lr=0.5", "trainer.progress=false"])
    run(cfg, tmp_path / "r")  # explicit=(): nothing typed, so nothing is refused; the record wins
    ran = OmegaConf.load(tmp_path / "r" / "config_resolved.yaml")
    assert ran.optimizer.lr == 0.05 and [r["lr"] for r in _metrics(tmp_path / "r")] == [0.05] * 3


@pytest.mark.parametrize("in_place", [False, True])
def test_a_changed_value_at_resume_is_refused_untouched(killed, tmp_path, in_place):
    target = killed if in_place else tmp_path / "r"
    before = _snapshot(killed)
    cfg, typed = _resume(killed, "optimizer.lr=0.02")
    with pytest.raises(ConfigError) as err:
        run(cfg, target, typed)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"optimizer.lr: {killed} ran with 0.05, this command asks for 0.02 (optimizer.lr=0.02)")
    assert "Fix: drop optimizer.lr=0.02" in message and "start a new run" in message
    assert _snapshot(killed) == before
    if not in_place:
        assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())


@pytest.mark.parametrize("override", ["optimizer=sgd", "+experiment=timing_delays", "experiment=timing_delays"])
def test_a_changed_group_or_experiment_at_resume_is_refused_untouched(killed, tmp_path, override):
    """A config group (no key of its own: it sets optimizer.*) and an experiment (which may set
    anything) are checked like plain keys."""
    before = _snapshot(killed)
    cfg, typed = _resume(killed, override)
    with pytest.raises(ConfigError) as err:
        run(cfg, tmp_path / "r", typed)
    message = str(err.value)
    assert "\n" not in message
    assert f"{killed} ran with" in message and f"({override}); a resumed run continues" in message
    assert f"Fix: drop {override} to resume" in message
    assert _snapshot(killed) == before
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())


def test_extending_a_constant_schedule_continues_from_the_recorded_epoch(finished, tmp_path, capsys):
    cfg, typed = _resume(finished, "trainer.epochs=3")
    summary = run(cfg, tmp_path / "r", typed)
    rows = _metrics(tmp_path / "r")
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert _without_time(rows[:2]) == _without_time(_metrics(finished))
    assert rows[2]["lr"] == 0.05
    assert summary["epochs"] == 3 and summary["resumed_from"] == str(finished)
    ran = OmegaConf.load(tmp_path / "r" / "config_resolved.yaml")
    assert ran.trainer.epochs == 3 and ran.optimizer.lr == 0.05
    out = capsys.readouterr().out
    assert (
        f"eventkit: resuming {finished} at epoch 3 of 3 with its recorded config; " f"changed: trainer.epochs 2 -> 3\n"
    ) in out


def test_extending_a_cosine_schedule_is_refused(tmp_path):
    first = tmp_path / "cosine"
    run(compose([*TINY, "trainer.epochs=1"]), first)
    cfg, typed = _resume(first, "trainer.epochs=2")
    with pytest.raises(
        ConfigError,
        match=r"^trainer.epochs: cannot change .* from 1 to 2 epochs: its schedule "
        r"'cosine' .*Fix: .*start a new run with trainer.epochs=2$",
    ):
        run(cfg, tmp_path / "r", typed)
    assert not (tmp_path / "r").exists()


def test_cli_says_it_resumed_and_refuses_in_one_line(finished, tmp_path):
    def eventkit(*args):
        return subprocess.run(
            [sys.executable, "-m", "eventkit", *args],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=600,
            env=dict(os.environ),
        )

    out = eventkit(f"trainer.resume={finished}", "trainer.epochs=3", f"hydra.run.dir={tmp_path / 'r'}")
    assert out.returncode == 0, out.stderr
    assert (
        f"eventkit: resuming {finished} at epoch 3 of 3 with its recorded config; " f"changed: trainer.epochs 2 -> 3"
    ) in out.stdout.splitlines()
    out = eventkit(f"trainer.resume={finished}", "seed=1", f"hydra.run.dir={tmp_path / 'r2'}")
    assert out.returncode == 2
    errors = [line for line in out.stderr.splitlines() if line.startswith("eventkit: error:")]
    assert (
        len(errors) == 1
        and errors[0].startswith(f"eventkit: error: seed: {finished} ran with 0, this " f"command asks for 1 (seed=1)")
        and "Fix: " in errors[0]
    )
    assert not (tmp_path / "r2" / "metrics.jsonl").exists() and not (tmp_path / "r2" / "summary.json").exists()
