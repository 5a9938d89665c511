"""Runs and sweeps that never lie: a run directory holds one run, every failure is recorded with
its reason, a sweep goes on past a failed job and says which failed, and a run's config can be
re-run by the relative path a shell user types."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from eventkit.plugin.testing import checkpoint_test_accuracy, run_cli, tiny_run
from eventkit.running.failures import one_line
from eventkit.running.pipeline import run
from eventkit.running.config import compose, validate
from eventkit.rundir.layout import RunDir, RunDirInUse, check_unused
from eventkit.running.sweep import write_summary
from eventkit.training.loop import NonFiniteLoss

TINY = tiny_run()
OLD_SUMMARY = {"status": "ok", "test_accuracy": 0.97, "best_val_accuracy": 0.96, "epochs": 30}


def eventkit(*args, cwd, module="eventkit"):
    return run_cli(*args, cwd=cwd, module=module)


def _finished_run(path: Path) -> Path:
    """A run directory as a finished run leaves it (the files that matter here)."""
    (path / ".hydra").mkdir(parents=True)
    (path / ".hydra" / "overrides.yaml").write_text("- seed=7\n")
    (path / "summary.json").write_text(json.dumps(OLD_SUMMARY))
    (path / "metrics.jsonl").write_text("".join(json.dumps({"epoch": e}) + "\n" for e in range(1, 31)))
    (path / "report.md").write_text("# old run\n")
    return path


def _snapshot(path: Path) -> dict:
    return {p.relative_to(path).as_posix(): p.read_bytes() for p in path.rglob("*") if p.is_file()}


# ------------------------------------------------------------------- one run per directory
def test_rerun_into_a_finished_run_dir_is_refused_and_leaves_it_intact(tmp_path):
    old = _finished_run(tmp_path / "old")
    before = _snapshot(old)
    out = eventkit(*TINY, "network.hidden=0", f"hydra.run.dir={old}", cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    errors = [line for line in out.stderr.splitlines() if line.startswith("eventkit: error:")]
    assert len(errors) == 1 and "already holds a run" in errors[0] and "Fix: choose another hydra.run.dir" in errors[0]
    assert "summary.json" in errors[0] and "Traceback" not in out.stderr
    # refused before Hydra wrote its record: .hydra/ still describes the old run
    assert _snapshot(old) == before


def test_run_refuses_a_used_dir_in_code_too(tmp_path):
    """The check in run() itself guards re-runs that compose without eventkit's Hydra callbacks
    (e.g. --config-name config_resolved) and calls from Python."""
    old = _finished_run(tmp_path / "old")
    before = _snapshot(old)
    with pytest.raises(RunDirInUse, match=r"already holds a run \(summary.json, metrics.jsonl, report.md\)"):
        run(compose([*TINY, "network.hidden=0"]), old)
    assert _snapshot(old) == before


def test_only_hydras_own_files_and_resuming_the_same_dir_are_allowed(tmp_path):
    fresh = tmp_path / "fresh"
    (fresh / ".hydra").mkdir(parents=True)
    (fresh / "eventkit.log").write_text("")
    check_unused(fresh)  # what Hydra writes before eventkit starts is not another run
    check_unused(tmp_path / "missing")
    killed = _finished_run(tmp_path / "killed")
    (killed / "checkpoints").mkdir()
    (killed / "checkpoints" / "last.safetensors").write_bytes(b"")
    check_unused(killed, resume=str(killed))  # continuing that very run
    with pytest.raises(RunDirInUse, match=f"trainer.resume={killed}"):
        check_unused(killed, resume=str(tmp_path / "other"))  # the fix names resume when it can work


def _failed_run(path: Path, epochs: int = 0, checkpoint: bool = False) -> Path:
    """A run directory as a run that failed leaves it."""
    (path / ".hydra").mkdir(parents=True)
    (path / ".hydra" / "overrides.yaml").write_text("- network.from_file=/missing.nir\n")
    (path / "eventkit.log").write_text("eventkit: error: network.from_file: ...\n")
    (path / "config_resolved.yaml").write_text("seed: 0\n")
    (path / "summary.json").write_text(json.dumps({"status": "failed", "error": "network.from_file: no such file"}))
    (path / "metrics.jsonl").write_text("".join(json.dumps({"epoch": e}) + "\n" for e in range(1, epochs + 1)))
    if checkpoint:
        (path / "checkpoints").mkdir()
        (path / "checkpoints" / "last.safetensors").write_bytes(b"")
    return path


def test_a_run_that_failed_before_training_gives_way_and_is_kept_beside(tmp_path):
    # catches: a failed run's directory refused like a finished one ("already holds a run"),
    # or taken over with the failed record deleted rather than kept
    old = _failed_run(tmp_path / "r")
    before = _snapshot(old)
    aside = check_unused(old, hydra_record=True)  # as the CLI checks it, before Hydra starts the run
    assert aside is not None and aside.parent == old and aside.name.startswith(".failed-")
    assert sorted(p.name for p in old.iterdir()) == [aside.name]
    assert {k.split("/", 1)[1]: v for k, v in _snapshot(old).items()} == before  # every file kept, unchanged
    # the next check sees an empty directory (the kept record is not another run)
    assert check_unused(old) is None
    # Hydra's record and log stay when they are this run's (run() checks after Hydra started it)
    again = _failed_run(tmp_path / "r2")
    aside = check_unused(again, hydra_record=False)
    assert sorted(p.name for p in again.iterdir()) == sorted([".hydra", "eventkit.log", aside.name])


@pytest.mark.parametrize("epochs, checkpoint", [(2, True), (0, True), (3, False)])
def test_a_run_that_failed_while_training_is_refused_as_failed(tmp_path, epochs, checkpoint):
    # catches: a run with results or a checkpoint moved aside (it may be resumed), or a refusal
    # that does not say the run failed
    old = _failed_run(tmp_path / "r", epochs=epochs, checkpoint=checkpoint)
    before = _snapshot(old)
    with pytest.raises(RunDirInUse) as err:
        check_unused(old)
    text = str(err.value)
    assert f"already holds a FAILED run, which failed after {epochs} epochs (network.from_file: no such file;" in text
    assert ("trainer.resume=" in text) == checkpoint, text
    assert _snapshot(old) == before


def test_rerun_after_a_missing_network_file_takes_the_directory(tmp_path):
    # the command a new user runs twice: first with a wrong path, then corrected, same directory
    run_dir = tmp_path / "r"
    out = eventkit(*TINY, "network.from_file=/missing.nir", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert out.returncode == 2 and "network.from_file" in out.stderr, out.stderr
    first = json.loads((run_dir / "summary.json").read_text())
    assert first["status"] == "failed"
    out = eventkit(*TINY, f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "ok"
    (aside,) = run_dir.glob(".failed-*")
    assert f"its record is kept in {aside}" in out.stdout
    assert json.loads((aside / "summary.json").read_text()) == first
    # the failed command's own record and log went with it
    assert "network.from_file=/missing.nir" in (aside / ".hydra" / "overrides.yaml").read_text()
    assert "network.from_file" in (aside / "eventkit.log").read_text()
    assert "network.from_file=/missing.nir" not in (run_dir / ".hydra" / "overrides.yaml").read_text()


# ------------------------------------------------------------------ failures are recorded
def test_config_error_inside_run_is_recorded_as_failed(tmp_path):
    with pytest.raises(ValueError, match="network.hidden: must be >= 1"):
        run(compose([*TINY, "network.hidden=0"]), tmp_path / "r")
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["error"].startswith("network.hidden: must be >= 1")
    assert "\n" not in summary["error"]
    manifest = json.loads((tmp_path / "r" / "manifest.json").read_text())
    assert manifest["status"] == "failed" and manifest["end_time"] and manifest["error"] == summary["error"]
    assert not (tmp_path / "r" / "report.md").exists()


def test_divergence_is_recorded_as_failed(tmp_path):
    with pytest.raises(NonFiniteLoss):
        run(compose([*TINY, "optimizer.lr=1e35"]), tmp_path / "r")
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["status"] == "failed" and "lower optimizer.lr" in summary["error"]
    assert "test_accuracy" not in summary


def test_one_line_names_the_type_of_unexpected_errors():
    assert one_line(ValueError("x: bad.\nmore")) == "x: bad."
    assert one_line(RuntimeError("boom")) == "RuntimeError: boom"
    assert one_line(KeyboardInterrupt()) == "KeyboardInterrupt"


def test_record_failure_marks_summary_and_manifest(tmp_path):
    rd = RunDir(tmp_path)
    rd.start_manifest(seed=1, plugins=[])
    rd.record_failure("loss is nan at epoch 1, batch 1")
    assert json.loads((tmp_path / "summary.json").read_text()) == {
        "status": "failed",
        "error": "loss is nan at epoch 1, batch 1",
    }
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["status"] == "failed" and manifest["end_time"] and manifest["seed"] == 1


def test_sweep_summary_shows_failed_jobs_with_their_reason(tmp_path):
    for job, summary in (
        ("0", {"status": "failed", "error": "network.hidden: must be >= 1, got 0"}),
        ("1", {**OLD_SUMMARY, "test_accuracy": 0.5}),
        ("2", None),
    ):
        d = tmp_path / job
        (d / ".hydra").mkdir(parents=True)
        (d / ".hydra" / "overrides.yaml").write_text(f"- seed={job}\n")
        if summary is not None:
            (d / "summary.json").write_text(json.dumps(summary))
    rows = {r["job"]: r for r in write_summary(tmp_path)}
    assert rows["1"]["status"] == "ok" and rows["1"]["test_accuracy"] == 0.5
    assert rows["0"]["status"] == "failed" and "network.hidden" in rows["0"]["error"]
    assert rows["2"]["status"] == "failed" and "no summary.json" in rows["2"]["error"]
    md = (tmp_path / "sweep_summary.md").read_text()
    assert "3 jobs (2 failed)" in md and "network.hidden: must be >= 1, got 0" in md
    assert md.splitlines()[4].endswith("| error |")


# --------------------------------------------------------------------- sweeps go on
def _varied(overrides: str) -> tuple:
    return tuple(o for o in overrides.split() if o.startswith(("network.hidden=", "optimizer.lr=")))


def test_sweep_goes_on_past_failed_jobs_and_exits_3(tmp_path):
    sweep = tmp_path / "sweep"
    out = eventkit(
        "-m", *TINY, "network.hidden=0,20", "optimizer.lr=1e35,1e-2", f"hydra.sweep.dir={sweep}", cwd=tmp_path
    )
    assert out.returncode == 3, out.stdout[-3000:] + out.stderr[-3000:]
    with open(sweep / "sweep_summary.csv") as fh:
        rows = {_varied(r["overrides"]): r for r in csv.DictReader(fh)}
    assert len(rows) == 4  # every job ran and is listed
    ok = rows[("network.hidden=20", "optimizer.lr=0.01")]
    assert ok["status"] == "ok"
    assert float(ok["test_accuracy"]) == pytest.approx(checkpoint_test_accuracy(sweep / ok["job"])[0])
    diverged = rows[("network.hidden=20", "optimizer.lr=1e+35")]
    assert diverged["status"] == "failed" and "lower optimizer.lr" in diverged["error"]
    assert not diverged["test_accuracy"]
    for lr in ("1e+35", "0.01"):
        invalid = rows[("network.hidden=0", f"optimizer.lr={lr}")]
        assert invalid["status"] == "failed" and invalid["error"].startswith("network.hidden: must be >= 1")
    assert "3 of 4 jobs failed" in out.stderr and "Traceback" not in out.stderr
    assert out.stderr.count("network.hidden: must be >= 1") >= 2


def test_sweep_into_a_used_sweep_dir_is_refused(tmp_path):
    sweep = tmp_path / "sweep"
    _finished_run(sweep / "0")
    out = eventkit("-m", *TINY, "seed=1,2", f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert out.returncode == 2 and "already holds a sweep" in out.stderr and "Fix:" in out.stderr
    assert sorted(p.name for p in sweep.iterdir()) == ["0"]


# ------------------------------------------------------------- re-run by relative path
@pytest.mark.parametrize("form", ["--config-path", "-cp", "--config-path="])
def test_rerun_from_a_relative_config_path(tmp_path, form):
    run_dir = tmp_path / "outputs" / "2024-01-01" / "12-00-00"
    run_dir.mkdir(parents=True)
    (run_dir / "config_resolved.yaml").write_text(OmegaConf.to_yaml(validate(compose([*TINY, "seed=5"]))))
    rel = "outputs/2024-01-01/12-00-00"
    path_args = [form + rel] if form.endswith("=") else [form, rel]
    out = eventkit(*path_args, "--config-name", "config_resolved", "--cfg", "job", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "seed: 5" in out.stdout and "hidden: 20" in out.stdout


# --------------------------------------------------- faults end in one line, recorded
def _errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("eventkit:")]


def test_ctrl_c_during_training_says_how_to_resume(tmp_path):
    import signal
    import time

    run_dir = tmp_path / "r"
    proc = subprocess.Popen(
        [sys.executable, "-m", "eventkit", *TINY, "trainer.epochs=100000", f"hydra.run.dir={run_dir}"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
        # Ctrl-C as in a terminal: a shell's background job (e.g. `nohup .ci/run &`) ignores SIGINT,
        # its children inherit that, and Python then installs no KeyboardInterrupt handler
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 300
        while not (run_dir / "metrics.jsonl").is_file() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    last = run_dir / "checkpoints" / "last.safetensors"
    assert lines[0].startswith("eventkit: interrupted at epoch ")
    assert f"the last checkpoint is {last}; resume with: python -m eventkit trainer.resume={run_dir}" in lines[0]
    assert last.is_file()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["error"].startswith("interrupted at epoch ")
    assert lines[0] in (run_dir / "eventkit.log").read_text()


def test_interrupt_before_training_has_no_checkpoint_to_resume(tmp_path):
    from eventkit.running.failures import explain_failure

    rd = RunDir(tmp_path)
    with rd.stage("data"):
        pass
    exc = explain_failure(KeyboardInterrupt(), rd)
    assert isinstance(exc, KeyboardInterrupt)
    assert one_line(exc) == "interrupted during data; no epoch had completed, so there is no checkpoint to resume from"


@pytest.mark.parametrize("inside", [False, True])
def test_run_dir_that_is_a_file_is_one_line(tmp_path, inside):
    afile = tmp_path / "afile"
    afile.write_text("not a directory\n")
    run_dir = afile / "sub" if inside else afile
    out = eventkit(*TINY, f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    errors = _errors(out.stderr)
    assert len(errors) == 1 and f"hydra.run.dir: {run_dir} is not a directory" in errors[0]
    assert "Fix: choose another hydra.run.dir" in errors[0]
    assert afile.read_text() == "not a directory\n"
    with pytest.raises(ValueError, match=f"hydra.run.dir: cannot create {run_dir}: a file is in the way.*Fix:"):
        run(compose(TINY), run_dir)  # in code too


def test_full_disk_is_one_line_and_recorded(tmp_path, monkeypatch):
    import errno

    import eventkit.rundir.checkpoints as checkpoints_mod

    real = checkpoints_mod.atomic_path

    def full_disk(path):
        if Path(path).name == "last.safetensors":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real(path)

    monkeypatch.setattr(checkpoints_mod, "atomic_path", full_disk)
    run_dir = tmp_path / "r"
    with pytest.raises(ValueError) as info:
        run(compose(TINY), run_dir)
    message = one_line(info.value)
    last = run_dir / "checkpoints" / "last.safetensors"
    assert message == (
        f"no space left on the device writing {last}. Fix: free space on that disk, "
        "or choose hydra.run.dir on a disk with room"
    )
    assert str(info.value) == message  # one line
    assert json.loads((run_dir / "summary.json").read_text()) == {"status": "failed", "error": message}


def test_huge_learning_rate_is_one_line(tmp_path):
    with pytest.raises(ValueError, match=r"lr=1e\+38 is too large.*overflows 32-bit floats.*Fix: lower optimizer.lr"):
        run(compose([*TINY, "optimizer.lr=1e38"]), tmp_path / "r")
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["status"] == "failed" and "lr=1e+38 is too large" in summary["error"]
    with pytest.raises(ValueError, match="lr=1e\\+39 is too large"):
        run(compose([*TINY, "optimizer=sgd", "optimizer.lr=1e39"]), tmp_path / "s")


def test_run_log_holds_what_eventkit_printed(tmp_path):
    out = eventkit(*TINY, f"hydra.run.dir={tmp_path / 'r'}", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    log = (tmp_path / "r" / "eventkit.log").read_text()
    assert "==== eventkit run summary ====" in log and f"run dir {tmp_path / 'r'}" in log
    assert "[eventkit]" not in out.stdout and out.stdout.count("==== eventkit run summary ====") == 1
    bad = eventkit(*TINY, "network.hidden=0", f"hydra.run.dir={tmp_path / 'bad'}", cwd=tmp_path)
    assert bad.returncode == 2
    assert "eventkit: error: network.hidden: must be >= 1" in (tmp_path / "bad" / "eventkit.log").read_text()
