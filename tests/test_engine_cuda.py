"""The cuda backend against the CPU backend, under numba's CUDA simulator (no GPU needed).

The simulator must be switched on before numba is imported, so the cases
(:mod:`cuda_sim_cases`) run once in a child process and these tests compare what it stored:
identical spike records, forward results and gradients to rel 1e-9 (float64) / 1e-5 (float32)
of each quantity's scale, for every neuron timing, readout kind, recurrence, delays (exact,
round, learnable zero), the spike-count regulariser, binary input, fake quantisation and ALIF's
adaptive threshold (with and without delays), models given by their description (learning
their constants) and LIF learning its time constants (by its description on CUDA); and
bit-identical gradients on a repeated run. ``EVENTKIT_CUDA_TESTS=device`` runs the same cases
on a real GPU instead of the simulator (eventkit/bench/gpu_check.sh).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
CASES = [
    "rec_regulariser_f64",
    "first_spike_f64",
    "deep_per_step_f32",
    "delays_exact_f64",
    "delays_round_f32",
    "grid_binary_quant_f32",
    "alif_f64",
    "alif_delays_f32",
    "described_delays_f64",
    "described_first_spike_f32",
    "described_learn_f64",
    "lif_learn_tau_f64",
]
ON_DEVICE = os.environ.get("EVENTKIT_CUDA_TESTS") == "device"


def _have_numba_cuda() -> bool:
    import importlib.util

    return importlib.util.find_spec("numba_cuda") is not None


pytestmark = pytest.mark.skipif(
    not _have_numba_cuda(), reason="numba-cuda is not installed (pip install 'eventkit[test]')"
)


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = tmp_path_factory.mktemp("cuda") / "cases.npz"
    env = dict(os.environ)
    if ON_DEVICE:
        env.pop("NUMBA_ENABLE_CUDASIM", None)
        args = ["--device"]
    else:
        args = []
    proc = subprocess.run(
        [sys.executable, str(HERE / "cuda_sim_cases.py"), str(out), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    with np.load(out) as f:
        return {k: f[k] for k in f.files}


def _pairs(results, case):
    names = sorted({k.rsplit("/", 1)[0] for k in results if k.startswith(case + "/")})
    return {n.split("/", 1)[1]: (results[n + "/cpu"], results[n + "/cuda"]) for n in names}


@pytest.mark.parametrize("case", CASES)
def test_cuda_matches_cpu(results, case):
    pairs = _pairs(results, case)
    rtol = 1e-9 if case.endswith("f64") else 1e-5
    # the same spikes, in the same order (neuron order within a step)
    for key in ("n_rec", "rec_step", "rec_nrn"):
        np.testing.assert_array_equal(pairs[key][1], pairs[key][0], err_msg=f"{case}: {key}")
    grads = [k for k in pairs if k.startswith("grad_")]
    assert grads, "no gradient was compared"
    for key, (cpu, cuda) in pairs.items():
        if key.startswith("rec_") or key == "n_rec":
            continue
        scale = float(np.abs(cpu).max()) if cpu.size else 0.0
        np.testing.assert_allclose(cuda, cpu, rtol=rtol, atol=rtol * scale, err_msg=f"{case}: {key}")
    # the comparison means something only where the case is active
    assert pairs["n_rec"][0].sum() > 10, "too few spikes"
    for key in ("grad_ff0", "grad_out"):
        assert np.abs(pairs[key][0]).max() > 0, f"{case}: {key} is zero on the CPU"
    assert np.abs(pairs["trace"][0]).max() > 0, "the output never moved"
    if "delays" in case:
        assert any(k.endswith("_delay") and np.abs(pairs[k][0]).max() > 0 for k in grads)
    if "learn" in case:  # the models' constants, per layer
        keys = ("tau_mem", "tau_syn") if case.startswith("lif") else ("omega", "tau", "gain", "level")
        assert all(np.abs(pairs[f"grad_{key}{k}"][0]) > 0 for key in keys for k in (0, 1))


def test_cuda_gradients_repeat_bit_for_bit(results):
    assert results["rec_regulariser_f64/repeat_max_diff/cuda"] == 0.0


def test_cuda_backend_without_a_device_says_what_to_do():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    from eventkit.engine.backends import get_backend, resolve_device

    # this process did not start the simulator: asking for cuda must fail in one line with the fix
    with pytest.raises(ValueError) as err:
        get_backend("cuda")
    msg = str(err.value)
    assert "\n" not in msg and "trainer.device=cpu" in msg and "eventkit[cuda]" in msg
    assert resolve_device("auto") == "cpu"
    with pytest.raises(ValueError, match="trainer.device=cuda"):
        resolve_device("cuda")
    with pytest.raises(ValueError, match="must be one of"):
        resolve_device("gpu")


LEARN_TAU = ["network.learn_tau={tau_mem: [10, 40], tau_syn: [1, 8]}", "network.tau_lr=0.5"]


@pytest.mark.slow
@pytest.mark.parametrize("extra", [[], LEARN_TAU], ids=["fixed", "learn-tau"])
def test_training_run_with_device_cuda_matches_device_cpu(tmp_path, extra):
    """`eventkit trainer.device=cuda` end to end (simulator): the engine the run trains with is the
    cuda backend, and its metrics equal the CPU run's to float32 rounding; with learned time
    constants too (LIF by its description on CUDA, its specialised kernels on the CPU), whose
    learned values and report table agree."""
    import json

    from eventkit.rundir.checkpoints import load_checkpoint

    tiny = [
        "dataset.n_train=16",
        "dataset.n_val=8",
        "dataset.n_test=8",
        "network.hidden=6",
        "network.init.ff_mean=3.0",
        "network.init.ff_std=1.0",
        "trainer.epochs=1",
        "trainer.batch_size=8",
        "trainer.progress=false",
    ]
    # the simulator's shared arrays are locked as in cuda_sim_cases (its unlocked first allocation
    # once gave two CUDA threads two scan arrays here: a garbage spike-record index)
    code = (
        f"import sys; sys.setswitchinterval(1e-5); sys.path.insert(0, {str(HERE)!r}); "
        "from cuda_sim_cases import lock_simulator_shared_arrays; lock_simulator_shared_arrays(); "
        "from eventkit.running.cli import main; sys.argv = ['eventkit', *sys.argv[1:]]; main()"
    )
    rows = {}
    for device in ("cpu", "cuda"):
        run = tmp_path / device
        env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1"}
        proc = subprocess.run(
            [sys.executable, "-c", code, *tiny, *extra, f"trainer.device={device}", f"hydra.run.dir={run}"],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        rows[device] = json.loads((run / "metrics.jsonl").read_text().splitlines()[0])
    for key in ("train_loss", "val_loss", "hidden_rate_hz"):
        assert rows["cuda"][key] == pytest.approx(rows["cpu"][key], rel=1e-4), key
    if extra:
        state = {d: load_checkpoint(tmp_path / d / "checkpoints" / "last.safetensors")[0] for d in ("cpu", "cuda")}
        for key in ("model.tau_mem0", "model.tau_syn0"):
            assert float(state["cpu"][key]) != (20.0 if "mem" in key else 5.0), f"{key} did not move"
            assert float(state["cuda"][key]) == pytest.approx(float(state["cpu"][key]), rel=1e-4), key
        assert "Learned neuron constants" in (tmp_path / "cuda" / "report.md").read_text()


def test_launch_hands_over_device_arrays_inside_the_kernels_named_tuples():
    """On a GPU the kernels take named tuples of torch CUDA tensors; numba types a tuple field by
    field and knows no torch tensor, so every tensor, at any depth, must be handed over as a
    numba device array (a launch with the tensors left in a ``Net`` fails on a real device only)."""
    import types

    import torch

    from eventkit.engine.backends import _cpu_kernels as K
    from eventkit.engine.backends.cuda import _Arrays

    arrays = _Arrays.__new__(_Arrays)
    arrays.sim = False
    arrays.cuda = types.SimpleNamespace(as_cuda_array=lambda t: ("device", t))
    t = torch.zeros(2)
    net = K.Net(*([t] * 14), 3, t, t)
    out = arrays.arg((net, (t, 1.5)))
    assert type(out[0]) is K.Net and out[0].n_slots == 3
    assert all(f[0] == "device" and isinstance(f[1], torch.Tensor) for f in out[0][:14] + out[0][15:])
    assert out[1][0][0] == "device" and out[1][1] == 1.5
