"""eventkit installed as a normal (non-editable) wheel finds its configs and plugin configs."""

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_wheel_contains_configs_and_runs_outside_the_checkout(tmp_path):
    dist = tmp_path / "dist"
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(dist), str(REPO)],
                           capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stderr[-3000:]
    wheel = next(dist.glob("eventkit-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "eventkit/conf/config.yaml" in names and "eventkit/conf/dataset/yinyang.yaml" in names
    assert "eventkit_wandb/conf/logger/wandb.yaml" in names
    assert not [n for n in names if n.startswith(("tests/", "examples/")) or "__pycache__" in n]

    site = tmp_path / "site"
    inst = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(site), str(wheel)],
                          capture_output=True, text=True, timeout=600)
    assert inst.returncode == 0, inst.stderr[-3000:]
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}
    where = subprocess.run([sys.executable, "-c", "import eventkit.config as c; print(c.conf_dir())"],
                           capture_output=True, text=True, cwd=work, env=env, timeout=120)
    assert where.stdout.strip() == str(site / "eventkit" / "conf"), where.stdout + where.stderr
    cfg = subprocess.run([sys.executable, "-m", "eventkit", "--cfg", "job", "logger=wandb"], capture_output=True,
                         text=True, cwd=work, env=env, timeout=300)
    assert cfg.returncode == 0, cfg.stderr[-3000:]
    assert "name: yinyang" in cfg.stdout and "project: eventkit" in cfg.stdout  # core + plugin configs
    run = work / "run"
    out = subprocess.run([sys.executable, "-m", "eventkit", "dataset.n_train=120", "dataset.n_val=40",
                          "dataset.n_test=40", "network.hidden=20", "trainer.epochs=1", "trainer.progress=false",
                          f"hydra.run.dir={run}"], capture_output=True, text=True, cwd=work, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads((run / "summary.json").read_text())["epochs"] == 1
