"""The Loihi 2 latency / energy model, its published-figure fit, and the report's use of a
measured hardware.json."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from eventkit.plugin import LI, DatasetSplits, from_samples
from eventkit_loihi2 import chip_cost
from eventkit_loihi2.emulator import emulate, predictions_from_voltages
from eventkit_loihi2.neuron import LoihiCUBA
from eventkit_loihi2.quantize import FloatNetwork, quantize
from eventkit_loihi2.report import samples_fingerprint
from eventkit_loihi2.run import hardware_record
from eventkit_loihi2.target import LoihiTarget

DOCS = Path(__file__).resolve().parents[3] / "docs" / "loihi2.md"


def test_model_arithmetic_by_hand():
    """Units: ns per op x ops per core per step -> us; W x s -> mJ; pJ x ops -> mJ."""
    a = chip_cost.Activity(steps=100, cores=2, synops=2e6, input_spikes=300)
    est = chip_cost.estimate(a, dict(sync_us=1.0, synop_ns=2.0, input_us_per_spike=0.5, static_w=0.5, synop_pj=10.0))
    # 1 us + 2 ns x (2e6 / 100 / 2) + 0.5 us x 3 input spikes per step
    assert est["time_terms_us"] == pytest.approx(dict(sync=1.0, synaptic_ops=20.0, input=1.5))
    assert est["latency_ms"] == pytest.approx(100 * 22.5e-3)
    assert est["energy_mj"]["static"] == pytest.approx(0.5 * 2.25e-3 * 1e3)
    assert est["energy_mj"]["dynamic"] == pytest.approx(10e-12 * 2e6 * 1e3)
    assert est["dominant_energy"] == "static" and est["dominant_time"] == "synaptic_ops"
    # a number fixes the coefficient: no range left
    assert est["latency_ms_range"] == pytest.approx((est["latency_ms"], est["latency_ms"]))


def test_ranges_bracket_the_central_values():
    est = chip_cost.estimate(chip_cost.Activity(steps=1000, cores=4, synops=5e6, input_spikes=8000))
    lo, hi = est["latency_ms_range"]
    assert lo < est["latency_ms"] < hi
    for term in ("static", "dynamic", "total"):
        lo, hi = est["energy_mj_range"][term]
        assert lo < est["energy_mj"][term] < hi, term
    for c in chip_cost.COEFFICIENTS.values():
        assert c.low <= c.value <= c.high and c.source


def test_energy_overrides_are_checked():
    with pytest.raises(ValueError, match=r"target\.energy\.pj_per_synop_high: unknown coefficient \(.*earlier"):
        chip_cost.coefficients(dict(pj_per_synop_high=23.6))
    with pytest.raises(ValueError, match=r"target\.energy\.static_w must be a number >= 0"):
        chip_cost.coefficients(dict(static_w=-1))
    with pytest.raises(ValueError, match=r"target\.energy\.sync_us must be a number"):
        chip_cost.coefficients(dict(sync_us="fast"))
    with pytest.raises(ValueError, match=r"target\.energy\.step_time_us: unknown"):  # refused before training
        LoihiTarget(lava="off", energy=dict(step_time_us=5.0))
    assert LoihiTarget(lava="off", energy=dict(static_w=0.1)).energy == dict(static_w=0.1)


def test_docs_show_the_computed_tables():
    """docs/loihi2.md section 7 prints the coefficient and fit tables as the code computes them."""
    text = DOCS.read_text()
    assert chip_cost.coefficient_table() in text
    assert chip_cost.fit_table() in text


def test_fit_to_published_measurements():
    rows = chip_cost.fit_rows()
    pilot, delayed = rows
    # PilotNet calibrates: its measured time fixes its (unpublished) activity, its static power
    # static_w and its dynamic power per core the synop_pj / synop_ns ratio; the model must then
    # give back its measured energy, split as measured
    assert pilot["model_time_ms"] == pytest.approx(pilot["time_ms"])
    assert pilot["model_energy_mj"] == pytest.approx(pilot["energy_mj"], rel=0.01)
    assert pilot["model_dynamic_mj"] == pytest.approx(pilot["dynamic_mj"], rel=0.01)
    assert pilot["energy_mj"] == pytest.approx(0.826347 / 342.29 * 1e3, rel=1e-4)  # the notebook's own figures
    # the delayed SHD row is a lower bound (Jetson / 'up to' ratio): the model must not go below it
    assert delayed["model_time_ms"] >= delayed["time_ms"] and delayed["model_energy_mj"] >= delayed["energy_mj"]
    # bound from the authors' logs: 30.836 s of GPU kernels for 2264 samples at batch 128, / 18
    assert delayed["time_ms"] == pytest.approx(30.836 / 2264 * 1e3 / 18)


def test_synop_energy_follows_a_measured_synop_time():
    """A measured synop_ns moves the dynamic energy per op with it (the busy core's power stays
    PilotNet's), unless synop_pj is given too."""
    c = chip_cost.coefficients(dict(synop_ns=2.0))
    assert c["synop_pj"].value == pytest.approx(0.474284 / 74 * 2.0e3)
    assert chip_cost.coefficients(dict(synop_ns=2.0, synop_pj=5.0))["synop_pj"].value == 5.0


def test_matching_jetson_figure_needs_the_same_topology():
    same = dict(n_in=700, hidden=[512, 512], n_out=20, recurrent=False, delays=True)
    assert chip_cost.matching_jetson(same) is chip_cost.JETSON_DELAYED_SHD
    for change in (dict(hidden=[512]), dict(recurrent=True), dict(delays=False), dict(n_out=35)):
        assert chip_cost.matching_jetson(dict(same, **change)) is None, change


def _export(rng, T=30):
    return FloatNetwork.layered(
        dict(ff0=rng.normal(0.4, 0.3, (12, 10)), out=rng.normal(0, 0.3, (3, 12))),
        [LoihiCUBA(tau_mem=20.0, tau_syn=5.0, threshold=1.0)],
        LI(tau_mem=20.0, tau_syn=5.0),
        T,
        readout=dict(name="exp_mean_v"),
    )


def _splits(rng, n=10, T=30):
    samples = [(rng.integers(0, T, m), rng.integers(0, 10, m)) for m in rng.integers(60, 120, n)]
    data = from_samples(samples, rng.integers(0, 3, n), n_channels=10, n_steps=T, dt=1.0, n_classes=3)
    return DatasetSplits(train=data, test=data)


@pytest.mark.parametrize("readout", ["exp_sum", "sum", "max"])
def test_predictions_from_voltages_match_the_emulator(readout):
    """A chip run's voltages are classified exactly as the emulator classifies them."""
    rng = np.random.default_rng(3)
    exp = _export(rng)
    exp.weights["out"] = rng.normal(0, 1.5, (3, 12))
    chip = quantize(exp)[0]
    labels = np.arange(24) % 3  # each class drives its own input channels
    samples = [(rng.integers(0, 30, 80), rng.integers(3 * c, 3 * c + 4, 80)) for c in labels]
    data = from_samples(samples, labels, n_channels=10, n_steps=30, dt=1.0, n_classes=3)
    emu = emulate(chip, data, n_record=len(data), readout=readout, offset=1)
    assert len(set(emu.predictions.tolist())) > 1, "the test needs more than one predicted class"
    assert np.array_equal(predictions_from_voltages(emu.v_out, readout, 1), emu.predictions)


def test_predictions_from_voltages_skip_the_offset_steps():
    """Step 0 (the input synapse's extra step) is outside the window: a large voltage there
    must not decide the class."""
    v = np.zeros((1, 5, 3), np.int32)
    v[0, 0, 2] = 10**6  # before the window
    v[0, 1:, 1] = 10
    for readout in ("exp_sum", "sum", "max"):
        assert predictions_from_voltages(v, readout, 1).tolist() == [1], readout
        assert predictions_from_voltages(v, readout, 0).tolist() == [2], readout


def _samples(tmp_path, rng, export=None, splits=None):
    splits = splits or _splits(rng)
    LoihiTarget(lava="off", samples=6).deploy(export or _export(rng), splits, tmp_path)
    d = tmp_path / "deploy" / "loihi2"
    with np.load(d / "samples.npz") as z:
        return d, {k: z[k] for k in z.files}


PROFILE = dict(time_per_step_us=4.0, total_power_w=0.30, static_power_w=0.25, host="ncl-test", partition="oheogulch")


def test_hardware_record_from_a_profiled_run(tmp_path):
    d, s = _samples(tmp_path, np.random.default_rng(5))
    assert str(s["readout"]) == "exp_sum" and int(s["readout_offset"]) == 1
    v = s["v_out"].copy()
    rec = hardware_record(s, v, dict(profile=PROFILE, lava_nc="0.10.0"))
    steps = v.shape[1]
    assert rec["bit_exact_vs_emulator"] and rec["prediction_agreement"] == 1.0
    assert rec["time_per_sample_ms"] == pytest.approx(steps * 4.0e-3)
    assert rec["dynamic_power_w"] == pytest.approx(0.05)
    assert rec["energy_per_sample_mj"]["static"] == pytest.approx(0.25 * steps * 4e-6 * 1e3)
    assert rec["energy_per_sample_mj"]["dynamic"] == pytest.approx(0.05 * steps * 4e-6 * 1e3)
    # one readout voltage off on the chip: no longer bit-exact, and the first difference is named
    v[2, 7, 1] += 64
    bad = hardware_record(s, v, dict(profile=PROFILE))
    assert not bad["bit_exact_vs_emulator"] and bad["mismatches"] == 1
    assert bad["first_mismatch"]["sample"] == 2 and bad["first_mismatch"]["step"] == 7
    with pytest.raises(ValueError, match="static_power_w"):
        hardware_record(s, v, dict(profile=dict(time_per_step_us=1.0, total_power_w=0.3)))


def test_report_uses_hardware_json(tmp_path):
    rng = np.random.default_rng(6)
    export, splits = _export(rng), _splits(rng)
    d, s = _samples(tmp_path, rng, export, splits)
    rec = hardware_record(s, s["v_out"], dict(profile=PROFILE), samples_fingerprint(d / "samples.npz"))
    (d / "hardware.json").write_text(json.dumps(rec))
    fields = LoihiTarget(lava="off", samples=6).deploy(export, splits, tmp_path)
    est = fields["estimate"]
    assert est["primary"] == "measured"
    steps = est["latency_steps"]
    assert est["measured"]["latency_ms"] == pytest.approx(steps * 4.0e-3)
    assert est["measured"]["energy_mj"]["static"] == pytest.approx(0.25 * steps * 4e-6 * 1e3)
    assert "ncl-test" in est["measured"]["source"]
    text = (d / "report.md").read_text()
    assert "**measured** (measured on a Loihi 2 chip" in text and "latency (model)" in text
    # a measurement of another network (other readout voltages) is not used, and the report says so
    fields = LoihiTarget(lava="off", samples=6).deploy(_export(np.random.default_rng(7)), splits, tmp_path)
    assert fields["estimate"]["primary"] == "model" and "another network" in fields["estimate"]["measured_stale"]
    assert "- not used: hardware.json was measured for another network" in (d / "report.md").read_text()
    (d / "hardware.json").write_text(json.dumps(dict(host="x")))
    with pytest.raises(ValueError, match="hardware.json: not a hardware record"):
        LoihiTarget(lava="off", samples=6).deploy(export, splits, tmp_path)
