"""The command line behaves as Hydra users expect: --help, --cfg job, overrides, completion."""

import os
import shutil
import subprocess
import sys

import pytest


def run(*args, env=None, cmd=(sys.executable, "-m", "eventkit")):
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})})


def test_help_lists_groups_including_plugin_options():
    out = run("--help")
    assert out.returncode == 0, out.stderr
    for line in (
        "neuron: alif, lif",
        "optimizer: adam, adamw, sgd",
        "scheduler: constant, cosine, warmup_ema_halving",
        "logger: none",
        "--plugins",
    ):
        assert line in out.stdout, line


def test_cfg_job_prints_the_composed_config_with_overrides():
    out = run("--cfg", "job", "--resolve", "optimizer=sgd", "+experiment=synthetic_kws", "network.hidden=512", "seed=4")
    assert out.returncode == 0, out.stderr
    assert "name: sgd" in out.stdout and "name: synthetic_kws" in out.stdout
    assert "hidden: 512" in out.stdout and "strength: 5.0e-10" in out.stdout  # resolver picked the 512 value
    assert "seed: 4" in out.stdout


@pytest.mark.skipif(shutil.which("eventkit") is None, reason="console script not installed")
def test_tab_completion_offers_groups_and_options():
    out = run("-sc", "query=bash", cmd=("eventkit",), env={"COMP_LINE": "eventkit optimizer="})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["optimizer=adam", "optimizer=adamw", "optimizer=sgd"]
    out = run("-sc", "query=bash", cmd=("eventkit",), env={"COMP_LINE": "eventkit neu"})
    assert "neuron=" in out.stdout.split()


@pytest.mark.skipif(shutil.which("eventkit") is None, reason="console script not installed")
def test_the_console_script_starts_the_mode_the_command_line_asks_for():
    # an entry point that skipped prepare_process would run in the environment's fast mode and
    # refuse the typed strict override
    out = run("trainer.reproducible=strict", "--cfg", "job", cmd=("eventkit",), env={"EVENTKIT_REPRODUCIBLE": "fast"})
    assert out.returncode == 0, out.stderr
    assert "reproducible: strict" in out.stdout
