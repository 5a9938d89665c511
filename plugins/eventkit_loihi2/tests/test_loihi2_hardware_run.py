"""``python -m eventkit_loihi2.run``: the simulated-chip step in a real Lava, and the hardware step
stopping with one line where lava-loihi is missing (as everywhere but an INRC Loihi 2 system).

Needs the separate Lava environment (skipped, saying so, without it; CI requires it with
EVENTKIT_REQUIRE_LAVA=1)."""

from __future__ import annotations

import numpy as np
import pytest

from eventkit.plugin import LI, DatasetSplits, from_samples
from eventkit_loihi2 import run
from eventkit_loihi2.lava_env import env_dir, resolve_lava_python
from eventkit_loihi2.neuron import LoihiCUBA
from eventkit_loihi2.quantize import FloatNetwork
from eventkit_loihi2.target import LoihiTarget

LAVA_PYTHON = resolve_lava_python()
needs_lava = pytest.mark.skipif(
    LAVA_PYTHON is None,
    reason=f"no Lava environment at {env_dir()} (build: python -m eventkit_loihi2.lava_env build)",
)


def _export_and_data(seed=21, T=30):
    rng = np.random.default_rng(seed)
    export = FloatNetwork.layered(
        dict(
            ff0=rng.normal(0.3, 0.3, (14, 12)),
            rec0=rng.normal(0, 0.3, (14, 14)),
            out=rng.normal(0, 0.3, (3, 14)),
        ),
        [LoihiCUBA(tau_mem=20.0, tau_syn=5.0, threshold=1.0)],
        LI(tau_mem=20.0, tau_syn=5.0),
        T,
        readout=dict(name="exp_mean_v"),
    )
    samples = [(rng.integers(0, T, m), rng.integers(0, 12, m)) for m in rng.integers(60, 150, 8)]
    data = from_samples(samples, rng.integers(0, 3, 8), n_channels=12, n_steps=T, dt=1.0, n_classes=3)
    return export, DatasetSplits(train=data, test=data)


def _deploy(tmp_path):
    export, splits = _export_and_data()
    LoihiTarget(lava="off", samples=3).deploy(export, splits, tmp_path)
    return tmp_path / "deploy" / "loihi2"


def test_missing_deployment_is_one_line(tmp_path, capsys):
    assert run.main([str(tmp_path)]) == run.EXIT_INPUT
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "model.net does not exist" in err[0] and "target=loihi2" in err[0]


@needs_lava
def test_simulated_chip_then_hardware_stops_with_one_line(tmp_path, capsys):
    d = _deploy(tmp_path)
    assert run.main([str(d), "--python", LAVA_PYTHON]) == run.EXIT_NO_HARDWARE
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "Loihi2SimCfg: Lava and the emulator agree bit for bit on 3 samples x 31 steps"
    hw = [line for line in lines if line.startswith("Loihi2HwCfg")]
    assert len(hw) == 1 and len(lines) == 2
    assert "lava-loihi" in hw[0] and "Neuromorphic Research Community" in hw[0]
    assert (d / "lava_voltages.npz").exists() and not (d / "hardware.json").exists()


@needs_lava
def test_simulated_chip_mismatch_stops_before_the_hardware(tmp_path, capsys):
    d = _deploy(tmp_path)
    with np.load(d / "samples.npz") as z:
        arrays = {k: z[k] for k in z.files}
    arrays["v_out"][1, 5, 0] += 1  # an emulator that disagrees with Lava in one value
    np.savez_compressed(d / "samples.npz", **arrays)
    assert run.main([str(d), "--python", LAVA_PYTHON, "--samples", "2"]) == run.EXIT_MISMATCH
    out = capsys.readouterr().out
    assert "differ in 1 readout values; first at sample 1, step 5, neuron 0" in out
    assert "Loihi2HwCfg" not in out


@needs_lava
def test_deploy_with_the_hardware_backend_and_no_lava_loihi(tmp_path):
    """target.lava_backend=hw where lava-loihi is missing: auto skips the check saying why,
    required refuses with the same line."""
    export, splits = _export_and_data()
    fields = LoihiTarget(lava="auto", lava_backend="hw", samples=2).deploy(export, splits, tmp_path / "a")
    assert fields["lava"]["status"] == "skipped" and "lava-loihi" in fields["lava"]["reason"]
    with pytest.raises(RuntimeError, match="target.lava=required: Loihi 2 hardware not available"):
        LoihiTarget(lava="required", lava_backend="hw", samples=2).deploy(export, splits, tmp_path / "b")


class _Power:
    """Stand-in for lava-loihi's Loihi2Power after a run: per-rail power series (W) whose first
    half covers the run and second half the post-run static measurement, and the static powers."""

    vdd_power = np.array([0.30, 0.32, 0.10, 0.10])
    vddm_power = np.array([0.50, 0.54, 0.20, 0.20])
    vddio_power = np.array([0.01, 0.01, 0.00, 0.00])
    static_vdd_power, static_vddm_power, static_vddio_power = 0.16, 0.40, 0.0
    static_total_power = 0.56


class _Timer:
    time_per_step = np.array([10.0, 12.0, 14.0])
    avg_time_per_step = 12.0


def test_profile_per_chip_as_lava_dl_benchmarks_compute_it():
    """First half of the power series; a board's static power shared by its chips and the idle
    chips' share removed (Lava-DL's PilotNet benchmark arithmetic)."""
    from eventkit_loihi2.lava_runner import _profile

    one = _profile(_Power(), _Timer(), "oheogulch", board_chips=1)
    assert one["time_per_step_us"] == pytest.approx(12.0) and one["time_per_step_us_max"] == 14.0
    assert one["vdd_power_w"] == pytest.approx(0.31) and one["vddm_power_w"] == pytest.approx(0.52)
    assert one["total_power_w"] == pytest.approx(0.31 + 0.52 + 0.01) and one["static_power_w"] == 0.56
    kp = _profile(_Power(), _Timer(), "kp", board_chips=8)
    assert kp["static_power_w"] == pytest.approx(0.07)
    assert kp["vdd_power_w"] == pytest.approx(0.31 - 7 * 0.02)
    assert kp["total_power_w"] == pytest.approx(0.84 - 7 * 0.07)


def test_results_hook_takes_the_board_or_not():
    from eventkit_loihi2.lava_runner import _results

    class WithBoard:
        def get_results(self, board):
            return ("board", board)

    class WithoutBoard:
        def get_results(self):
            return "no board"

    assert _results(WithBoard())("b") == ("board", "b")
    assert _results(WithoutBoard())("b") == "no board"
