"""What a user meets on the command line: the log holds what was printed, resume continues in
place (or says where it went on), ``--cfg job`` shows the config that runs, a smoke run cuts any
recipe down, plugins switched off are named as such, and the report's plots read."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

from eventkit.running.pipeline import adapted_config
from eventkit.running.config import compose
from eventkit.base.registry import get_registry
from eventkit.plugin.testing import run_cli, tiny_run

TINY = tiny_run(epochs=2)


def _ok(out: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert out.returncode == 0, out.stderr[-3000:]
    return out


def test_the_log_holds_every_line_printed_under_one_name(tmp_path):
    """Epoch lines, notices and the summary are in eventkit.log; a re-run from a run's
    config_resolved.yaml (which has no hydra section) names its log eventkit.log too."""
    first = tmp_path / "first"
    out = _ok(run_cli(*TINY, "trainer.smoke=true", "trainer.progress=true", f"hydra.run.dir={first}", cwd=tmp_path))
    log = (first / "eventkit.log").read_text()
    for line in out.stdout.strip().splitlines():
        assert line in log, line
    assert "epoch 1/2:" in log and "epoch 2/2:" in log and "NOTICE trainer.smoke" in log
    second = tmp_path / "second"
    _ok(
        run_cli(
            "--config-path", str(first), "--config-name", "config_resolved", f"hydra.run.dir={second}", cwd=tmp_path
        )
    )
    assert (second / "eventkit.log").is_file() and not list(second.glob("app*.log"))
    assert "epoch 2/2:" in (second / "eventkit.log").read_text()


def test_epoch_lines_reach_the_log_when_the_terminal_shows_a_bar(tmp_path, monkeypatch):
    """On a terminal the epoch bar redraws itself; the log gets one plain line per epoch and no
    control codes."""
    from eventkit.rundir import runlog
    from eventkit.training import loop as train_mod

    monkeypatch.setattr(train_mod, "_on_terminal", lambda: True)
    with runlog.capture(tmp_path):
        bar = train_mod._bar(range(2), True, total=2, desc="epochs")
        for _ in bar:
            bar.set_postfix(loss="0.5")
        bar.close()
        sys.stderr.write("\r 50%|#####     | 1/2 redraw")
        print("a plain line")
    log = (tmp_path / "eventkit.log").read_text()
    assert "epoch 1/2: loss=0.5" in log and "epoch 2/2: loss=0.5" in log
    assert "\r" not in log and "\x1b" not in log and "redraw" not in log
    assert log.strip().splitlines()[-1] == "a plain line"


def test_resume_continues_in_place_and_keeps_the_record(tmp_path):
    """trainer.resume=DIR goes on in DIR: metrics continue, the manifest keeps the first attempt,
    a temporary file left by a killed writer is removed, the log continues and the resume line is
    in it; Hydra's record of the first command stays."""
    run = tmp_path / "run"
    _ok(run_cli(*TINY, "scheduler=constant", f"hydra.run.dir={run}", cwd=tmp_path))
    first_overrides = (run / ".hydra" / "overrides.yaml").read_text()
    stale = run / "checkpoints" / ".last.safetensors.tmp-999999999"
    stale.write_bytes(b"half a checkpoint")
    out = _ok(run_cli(f"trainer.resume={run}", "trainer.epochs=3", cwd=tmp_path))
    assert f"run dir {run}" in out.stdout
    assert not (tmp_path / "outputs").exists()  # nothing went to a new directory
    assert [json.loads(x)["epoch"] for x in (run / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3]
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "ok" and len(manifest["attempts"]) == 1
    assert manifest["attempts"][0]["status"] == "ok" and "trainer.epochs=2" in manifest["attempts"][0]["argv"]
    assert not stale.exists()
    assert (run / ".hydra" / "overrides.yaml").read_text() == first_overrides
    assert len(list((run / ".hydra").glob("resumed-*"))) == 1
    log = (run / "eventkit.log").read_text()
    assert log.count("==== eventkit run summary ====") == 2 and f"eventkit: resuming {run} at epoch 3 of 3" in log
    assert json.loads((run / "summary.json").read_text())["epochs"] == 3


def test_resume_into_another_directory_leaves_a_pointer(tmp_path):
    run, other = tmp_path / "run", tmp_path / "other"
    _ok(run_cli(*TINY, "scheduler=constant", f"hydra.run.dir={run}", cwd=tmp_path))
    _ok(run_cli(f"trainer.resume={run}", "trainer.epochs=3", f"hydra.run.dir={other}", cwd=tmp_path))
    for name in ("summary.json", "manifest.json"):
        assert json.loads((run / name).read_text())["continued_in"] == str(other.resolve())
    assert json.loads((other / "summary.json").read_text())["epochs"] == 3


def test_an_interrupted_run_says_the_exact_resume_command(tmp_path):
    from eventkit.running.failures import interrupted_message
    from eventkit.rundir.layout import RunDir

    rd = RunDir(tmp_path)
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.safetensors").write_bytes(b"")
    rd.current_stage = "train"
    assert interrupted_message(rd).endswith(f"resume with: python -m eventkit trainer.resume={tmp_path}")


def test_cfg_job_prints_the_config_the_target_adapts(tmp_path):
    out = _ok(run_cli("+experiment=timing_delays", "target=loihi2", "neuron=lif", "--cfg", "job", cwd=tmp_path))
    head = [line for line in out.stdout.splitlines() if line.startswith("#")]
    assert head[0].startswith("# target loihi2 adapts the composed config before it runs")
    assert any("network.delays.ff.mode: exact -> round" in line for line in head)
    assert any("neuron: lif kept as typed" in line for line in head)
    body = "\n".join(line for line in out.stdout.splitlines() if not line.startswith("#"))
    assert "mode: round" in body and "mode: exact" not in body
    assert not (tmp_path / "outputs").exists()  # showing a config writes no run directory
    plain = _ok(run_cli("--cfg", "job", "seed=3", cwd=tmp_path))
    assert not plain.stdout.startswith("#") and "seed: 3" in plain.stdout


def test_smoke_cuts_any_recipe_to_a_check(tmp_path):
    """trainer.smoke on a recipe with warm-up and early stop: at most 2 epochs of 4 batches,
    constant lr (the recipe's target lr), no early stop, small evaluation sets, said in a notice."""
    cfg = compose(["+experiment=synthetic_kws", "trainer.smoke=true"])
    assert cfg.scheduler.name != "constant" and cfg.trainer.epochs > 2
    ran, _, notices = adapted_config(cfg, ["trainer.smoke=true"], get_registry())
    assert ran.scheduler.name == "constant" and ran.trainer.epochs == 2 and ran.trainer.patience is None
    assert any(n.startswith("trainer.smoke:") for n in notices)
    from eventkit.running.pipeline import run

    summary = run(compose(["+experiment=synthetic_kws", "trainer.smoke=true", "trainer.progress=false"]), tmp_path)
    metrics = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert len(metrics) == 2 and metrics[0]["lr"] == metrics[1]["lr"] == ran.optimizer.lr
    assert summary["notices"][0].startswith("trainer.smoke:")
    assert "trainer.smoke" in (tmp_path / "report.md").read_text()


def test_a_disabled_plugin_is_named_as_disabled(tmp_path):
    out = run_cli(*TINY, "target=loihi2", cwd=tmp_path, env={"EVENTKIT_DISABLE_PLUGINS": "loihi2,wandb"})
    assert out.returncode == 2
    assert "disabled by EVENTKIT_DISABLE_PLUGINS=loihi2,wandb. Fix: EVENTKIT_DISABLE_PLUGINS=wandb" in out.stderr
    assert "not installed" not in out.stderr


def _overlaps(fig) -> list[tuple[str, str]]:
    """Pairs of tick labels (from any two axes, or within one axis) whose drawn boxes overlap."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = []
    for i, ax in enumerate(fig.axes):
        shown = [ax.title]
        for axis, (lo, hi) in ((ax.xaxis, sorted(ax.get_xlim())), (ax.yaxis, sorted(ax.get_ylim()))):
            for tick in [*axis.get_major_ticks(), *axis.get_minor_ticks()]:  # the ticks drawn: inside the view
                if lo - 1e-12 * abs(hi - lo) <= tick.get_loc() <= hi + 1e-12 * abs(hi - lo):
                    shown.append(tick.label1)
        for label in shown:
            if label.get_visible() and label.get_text():
                boxes.append((f"axes{i}:{label.get_text()}", label.get_window_extent(renderer)))
    for i, ax in enumerate(fig.axes):  # a label must not reach into another panel's plot area
        for j, other in enumerate(fig.axes):
            if i != j:
                boxes.append((f"axes{j}:area", other.get_window_extent(renderer)))
    pairs = [(a, b) for k, (a, ba) in enumerate(boxes) for b, bb in boxes[k + 1 :] if ba.overlaps(bb)]
    return sorted(
        {(a, b) for a, b in pairs if a.split(":")[0] != b.split(":")[0]}
        | {(a, b) for a, b in pairs if a.split(":")[0] == b.split(":")[0] and "area" not in (a + b)}
    )


def test_training_curves_have_no_overlapping_labels():
    """An lr within one decade gets wide minor-tick labels (6x10^-3) on its log axis: they must not
    run into the accuracy panel's plot area (the fault seen before), and the lr axis keeps labels."""
    from eventkit.running.report import curves_figure

    lr = list(np.linspace(2e-3, 8e-3, 60))  # within one decade: matplotlib labels the minor ticks (6x10^-3)
    metrics = [
        dict(epoch=e + 1, train_loss=1 / (e + 1), val_loss=1.1 / (e + 1), train_accuracy=0.5, val_accuracy=0.4, lr=x)
        for e, x in enumerate(lr)
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a layout that cannot fit its labels warns
        fig = curves_figure(metrics)
        assert _overlaps(fig) == []
    fig.canvas.draw()
    lr_axis = fig.axes[2].yaxis
    assert any(t.label1.get_text() for t in [*lr_axis.get_major_ticks(), *lr_axis.get_minor_ticks()])


def test_a_raster_whose_hidden_layer_did_not_spike_says_so():
    import torch

    from eventkit.engine import LIF, EventpropNet
    from eventkit.running.report import raster_figure
    from eventkit.plugin.testing import random_data

    data = random_data(np.random.default_rng(0), 2, 6, 40, rate=(50, 80))
    net = EventpropNet(6, 3, hidden=[5], recurrent=False, neuron=LIF(), n_steps=40, init=dict(ff_mean=-1.0, ff_std=0.0))
    with torch.no_grad():
        assert all(len(s) == 0 for s in net.record(data.subset([0])).hidden)  # inhibitory weights: silent
    fig = raster_figure(net, data, 0)
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert "no spikes in hidden layer 0 for this sample" in texts


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_stale_temporaries_of_live_processes_stay(tmp_path):
    from eventkit.rundir.layout import remove_stale_temporaries

    live = tmp_path / f".summary.json.tmp-{os.getppid()}"
    dead = tmp_path / ".summary.json.tmp-999999999"
    live.write_text("x")
    dead.write_text("x")
    assert remove_stale_temporaries(tmp_path) == [dead]
    assert live.exists() and not dead.exists()
