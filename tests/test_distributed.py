"""trainer.distributed: two CPU processes joined by gloo train bit for bit what one process
trains on the same global batches (and three processes too), whatever the split of a short last
batch; only rank 0 writes, a distributed run resumes, every process of a torchrun launch uses one
run directory, and a bad setting is one line. Learned time constants (LIF's coefficient rows, and a
described model's sums, at engine level) travel with the weights' group gradients.

Exactness. The processes exchange readouts, spike counts and the gradients of the engine's fixed
sample groups as copies and add them in the order one process adds them, so weights, Adam state,
metrics and test figures must be equal, not close: any wrong weighting of a split batch, a
per-process regulariser or a sum of partial sums (1-ulp differences that grow within an epoch)
breaks equality.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from eventkit.running.pipeline import run
from eventkit.running.config import compose
from eventkit.rundir.checkpoints import load_checkpoint

TESTS = Path(__file__).resolve().parent
# 65 training samples in batches of 16: 4 full batches and one of a single sample, which one
# process trains alone; 20 val / 30 test samples in evaluation batches of 8 split 2:1 and 2:2 by batch
TINY = [
    "dataset.n_train=65",
    "dataset.n_val=20",
    "dataset.n_test=30",
    "network.hidden=16",
    "trainer.batch_size=16",
    "trainer.eval_batch_size=8",
    "trainer.epochs=2",
    "trainer.progress=false",
    "scheduler=constant",
    "optimizer.lr=0.02",
    "network.regularizer.strength=1e-3",
    "network.regularizer.nu=2",
]
#: the short last batches of the worker's "uneven" (3 samples) and "even" (8 samples) scenarios
SHORT = {"uneven": ["dataset.n_train=67"], "even": ["dataset.n_train=72"]}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _metrics(path: Path) -> list[dict]:
    return [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]


def _launch_env() -> dict:
    return {
        k: v
        for k, v in os.environ.items()
        if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "SUBMITIT_EXECUTOR")
    }


@pytest.fixture(scope="module")
def single(tmp_path_factory) -> Path:
    """The 2-epoch run in this one process."""
    path = tmp_path_factory.mktemp("single") / "run"
    run(compose(TINY), path)
    return path


@pytest.fixture(scope="module")
def single_short(tmp_path_factory) -> dict:
    """The 2-epoch runs with a short last batch of 3 and of 8 samples, in this one process."""
    paths = {}
    for name, extra in SHORT.items():
        paths[name] = tmp_path_factory.mktemp(f"single-{name}") / "run"
        run(compose([*TINY, *extra]), paths[name])
    return paths


def _spawn(tmp_path_factory, world: int, names: list | None = None, overrides: list = TINY) -> dict:
    """The scenarios of distributed_worker.py in ``world`` spawned gloo processes: what each reported."""
    import torch.multiprocessing as mp

    root, report = tmp_path_factory.mktemp(f"world{world}"), tmp_path_factory.mktemp("report")
    sys.path.insert(0, str(TESTS))
    try:
        import distributed_worker
    finally:
        sys.path.remove(str(TESTS))
    mp.start_processes(
        distributed_worker.main,
        args=(world, _free_port(), str(root), str(report), overrides, names),
        nprocs=world,
        start_method="spawn",
        join=True,
    )
    ranks = [json.loads((report / f"rank{r}.json").read_text()) for r in range(world)]
    return {"root": root, "ranks": ranks}


@pytest.fixture(scope="module")
def two(tmp_path_factory) -> dict:
    return _spawn(tmp_path_factory, 2)


@pytest.fixture(scope="module")
def three(tmp_path_factory) -> dict:
    return _spawn(tmp_path_factory, 3, ["straight", "uneven"])


def _assert_same_training(got: Path, want: Path) -> None:
    a, _ = load_checkpoint(got / "checkpoints" / "last.safetensors")
    b, _ = load_checkpoint(want / "checkpoints" / "last.safetensors")
    assert sorted(a) == sorted(b)
    for key in b:  # weights and the optimizer state (Adam moments, step count): bit for bit
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=lambda m: f"{key}: {m}")
    rows_a, rows_b = _metrics(got), _metrics(want)
    assert len(rows_a) == len(rows_b) == 2
    for ra, rb in zip(rows_a, rows_b):
        ra.pop("epoch_time_s"), rb.pop("epoch_time_s")
        assert ra == rb


def _assert_same_summary(ranks: list, name: str, want: Path) -> None:
    want = json.loads((want / "summary.json").read_text())
    for rank in ranks:  # evaluation gathers the processes' batches: all see the whole test set's figures
        got = rank[name]["summary"]
        for key in ("test_accuracy", "test_loss", "test_spikes_per_sample", "last_test_accuracy", "best_epoch"):
            assert got[key] == want[key], (key, got[key], want[key])


def test_two_processes_train_what_one_process_trains(single, two):
    _assert_same_training(two["root"] / "straight", single)
    _assert_same_summary(two["ranks"], "straight", single)


@pytest.mark.parametrize("split", sorted(SHORT))
def test_a_short_last_batch_split_between_processes(single_short, two, split):
    """3 samples split 1 + 2 (uneven) and 8 split 4 + 4 (even): bit for bit one process's run."""
    _assert_same_training(two["root"] / split, single_short[split])
    _assert_same_summary(two["ranks"], split, single_short[split])


def test_three_processes_train_what_one_process_trains(single, single_short, three):
    """8 groups split 2 + 3 + 3; the short last batch of 1 sample (one group: two processes have
    no samples) and of 3 (one group each)."""
    _assert_same_training(three["root"] / "straight", single)
    _assert_same_summary(three["ranks"], "straight", single)
    _assert_same_training(three["root"] / "uneven", single_short["uneven"])


def test_only_rank_zero_writes(two):
    rank0, rank1 = two["ranks"]
    assert rank1["writes"] == []
    # the same watch sees rank 0 write the run directories (so it does see writes)
    for name in ("straight", "first", "resumed"):
        assert any(w.endswith(f"-> {two['root'] / name}/checkpoints/last.safetensors") for w in rank0["writes"]), name
        assert (two["root"] / name / "summary.json").is_file()
    assert json.loads((two["root"] / "straight" / "summary.json").read_text())["status"] == "ok"


def test_processes_split_the_cores_among_them(two):
    cores = len(os.sched_getaffinity(0))
    assert [r["straight"]["threads"] for r in two["ranks"]] == [max(1, cores // 2)] * 2


def test_a_distributed_run_resumes_where_it_stopped(single, two):
    resumed, first = two["root"] / "resumed", two["root"] / "first"
    assert [r["epoch"] for r in _metrics(first)] == [1]
    assert _metrics(resumed)[0] == _metrics(first)[0]
    # 1 epoch, then 1 more from the checkpoint: the 2-epoch single-process run
    _assert_same_training(resumed, single)
    for rank in two["ranks"]:
        assert rank["resumed"]["summary"]["resumed_from"] == str(first)


def test_a_batch_with_fewer_groups_than_processes_is_one_line(two):
    for rank in two["ranks"]:
        error = rank["idle"]["error"]
        assert "\n" not in error
        assert error.startswith("trainer.batch_size: a batch of 1 has 1 sample group"), error
        assert "Fix: trainer.batch_size=2 or more, or launch at most 1 process" in error
    assert not (two["root"] / "idle" / "checkpoints").exists()


def test_several_processes_without_distributed_is_one_line(two):
    for rank in two["ranks"]:
        error = rank["off"]["error"]
        assert "\n" not in error and "trainer.distributed=false" in error
        assert "Fix: add trainer.distributed=true" in error


def test_distributed_without_a_launch_is_one_line(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "eventkit", *TINY, "trainer.distributed=true", f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env=_launch_env(),
    )
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2, out.stderr
    assert lines[0].startswith(
        "eventkit: error: trainer.distributed=true, but this process was not launched " "as one of several"
    ), out.stderr
    assert "Fix: launch it with torchrun" in lines[0] and len(lines) == 2, out.stderr
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["status"] == "failed"


#: sitecustomize.py for the launched processes: a process of rank > 0 (torchrun's RANK, or a
#: submitit task's index, known before the task exports RANK) records its writes under root
SITE = """
import atexit, json, os, sys
RANK = os.environ.get("RANK") or os.environ.get("SUBMITIT_LOCAL_GLOBALID")
if RANK not in (None, "0"):
    sys.path.insert(0, {tests!r})
    from distributed_worker import _watch_writes
    writes = []
    _watch_writes({root!r}, writes)
    atexit.register(lambda: open({report!r} + RANK, "w").write(json.dumps(writes)))
"""


def _with_write_watch(tmp_path: Path, root: Path, report: Path) -> dict:
    """The environment for launching processes whose rank-1 process records its writes under root."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITE.format(tests=str(TESTS), root=str(root), report=str(report)))
    return {**_launch_env(), "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}


def test_torchrun_processes_share_one_run_dir_written_by_rank_zero(tmp_path):
    """``${now:%f}`` (microseconds) differs between the processes' clocks: without the agreement
    each would create its own directory."""
    root, report = tmp_path / "out", tmp_path / "writes-rank"
    env = _with_write_watch(tmp_path, root, report)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            "-m",
            "eventkit",
            *TINY,
            "trainer.distributed=true",
            "hydra.run.dir=out/${now:%H-%M-%S-%f}",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    runs = list(root.iterdir())
    assert len(runs) == 1, runs
    assert json.loads((runs[0] / "summary.json").read_text())["status"] == "ok"
    assert (runs[0] / ".hydra" / "config.yaml").is_file()
    assert (runs[0] / "eventkit.log").read_text().count("in each of 2 processes") == 1  # rank 0's line only
    assert out.stdout.count("eventkit run summary") == 1  # rank 1 prints nothing
    assert json.loads(Path(f"{report}1").read_text()) == []


@pytest.mark.slow
def test_submitit_tasks_form_one_distributed_run(tmp_path):
    """The SLURM launch's code path, on this machine: hydra/launcher=submitit_local_distributed
    starts 2 tasks per job; each exports torch.distributed's environment from submitit's, both use
    the job's directory, and only task 0 writes Hydra's record and the run's files. Before eventkit's
    code runs in a task, Hydra creates the job's directory in whichever task comes first and opens
    the job log (append mode) in every task; task 1 writes nothing into it. submitit's own
    .submitit/ folder (each task's result) is not the run's."""
    root, report = tmp_path / "out", tmp_path / "writes-rank"
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "eventkit",
            "-m",
            "hydra/launcher=submitit_local_distributed",
            *TINY,
            "trainer.distributed=true",
            "hydra.sweep.dir=out/${now:%H-%M-%S-%f}",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env=_with_write_watch(tmp_path, root, report),
    )
    assert out.returncode == 0, out.stderr[-3000:]
    (sweep,) = root.iterdir()
    job = sweep / "0"
    assert json.loads((job / "summary.json").read_text())["status"] == "ok"
    assert (job / ".hydra" / "config.yaml").is_file()
    log = next((sweep / ".submitit").glob("*/*_0_log.out")).read_text()
    assert "in each of 2 processes" in log  # rank 0's header: the job trained in 2 processes
    writes = [w for w in json.loads(Path(f"{report}1").read_text()) if "/.submitit/" not in w]
    assert [w for w in writes if w != f"os.mkdir {job}"] == [f"open {job}/eventkit.log"], writes
    assert (job / "eventkit.log").read_text().count("in each of 2 processes") == 1  # rank 0's line only


@pytest.mark.parametrize(
    "per_neuron", [False, pytest.param(True, marks=pytest.mark.slow)], ids=["per-layer", "per-neuron"]
)
def test_learnable_time_constants_train_the_same_in_two_processes(tmp_path_factory, per_neuron):
    """network.learn_tau: the coefficient-row gradients travel with the weights' group gradients,
    and the process whose share of the last batch is empty (65 samples in batches of 16) passes
    them on to its time constants too: weights, time constants and Adam state equal one process's;
    per layer, and per neuron (one row per neuron)."""
    learn = [*TINY, "network.learn_tau={tau_mem: [8, 60], tau_syn: [1, 6]}", "network.tau_lr=0.5"]
    learn += [f"network.tau_per_neuron={str(per_neuron).lower()}"]
    one = tmp_path_factory.mktemp("single-tau") / "run"
    run(compose(learn), one)
    two = _spawn(tmp_path_factory, 2, ["straight"], learn)
    _assert_same_training(two["root"] / "straight", one)
    taus, _ = load_checkpoint(one / "checkpoints" / "last.safetensors")
    tau_mem, tau_syn = taus["model.tau_mem0"].numpy(), taus["model.tau_syn0"].numpy()
    assert np.all(tau_mem != 20.0) and np.all(tau_syn != 5.0)
    assert tau_mem.shape == ((16,) if per_neuron else ())  # network.hidden=16 (TINY)


def test_a_described_model_learns_its_constants_alike_in_two_processes(tmp_path):
    """A model given by its description learning its constants (and fractional delays): the
    models' sums ride on the weight rows' group gradients through the exchange, so each of two
    processes, simulating half of the batch's sample groups, gets one process's whole-batch
    gradient bit for bit. Bugs caught: the sums left out of the exchange (each process would see
    only its own samples' share of dL/d(constant)), or summed out of group order."""
    import torch.multiprocessing as mp

    sys.path.insert(0, str(TESTS))
    try:
        import distributed_engine_worker as worker
    finally:
        sys.path.remove(str(TESTS))
    net, data = worker.make()
    alone = worker.gradients(net, data, worker.DataParallel(0, 1))
    mp.start_processes(worker.main, args=(2, _free_port(), str(tmp_path)), nprocs=2, start_method="spawn", join=True)
    for rank in range(2):
        with np.load(tmp_path / f"rank{rank}.npz") as got:
            assert sorted(got.files) == sorted(alone)
            for name, want in alone.items():
                np.testing.assert_array_equal(got[name], want, err_msg=f"rank {rank}: {name}")
    for key in ("omega", "tau", "gain"):
        assert all(abs(float(alone[f"{key}{k}"])) > 0 for k in (0, 1)), key
