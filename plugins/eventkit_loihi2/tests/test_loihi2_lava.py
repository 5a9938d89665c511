"""The emulator against a REAL Lava run (lava-nc 0.10.0 + lava-dl 0.6.0, Loihi2SimCfg fixed_pt).

Needs the separate Lava environment (``python -m eventkit_loihi2.lava_env build``; CI builds it
with plugins/eventkit_loihi2/ci_build_lava_env.sh). Without it these tests are skipped, saying so.
A mismatch fails with the first differing sample, step and neuron.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from eventkit.plugin import LI, LIF, DatasetSplits, from_samples
from eventkit_loihi2.emulator import emulate
from eventkit_loihi2.lava_check import check
from eventkit_loihi2.lava_env import env_dir, resolve_lava_python
from eventkit_loihi2.netx import write_netx, write_samples
from eventkit_loihi2.neuron import LoihiCUBA
from eventkit_loihi2.quantize import FloatNetwork, quantize
from eventkit_loihi2.target import LoihiTarget

LAVA_PYTHON = resolve_lava_python()
needs_lava = pytest.mark.skipif(
    LAVA_PYTHON is None,
    reason=f"no Lava environment at {env_dir()} (build: python -m eventkit_loihi2.lava_env build)",
)


def test_lava_environment_exists_where_required():
    """CI sets EVENTKIT_REQUIRE_LAVA=1: there the Lava checks must run, never skip."""
    if os.environ.get("EVENTKIT_REQUIRE_LAVA") != "1":
        pytest.skip("EVENTKIT_REQUIRE_LAVA is not set")
    assert LAVA_PYTHON is not None, f"no Lava environment at {env_dir()}"


def _network(rng, T, case):
    n_in, n_out = 14, 4
    weights, delays, models = {}, {}, []

    def layer(k, n, pre, rec, mean=0.3, model=None, delay=False):
        weights[f"ff{k}"] = rng.normal(mean, 0.3, (n, pre))
        if rec:
            weights[f"rec{k}"] = rng.normal(0, 0.3, (n, n))
        models.append(model or LoihiCUBA(tau_mem=20.0, tau_syn=5.0, threshold=1.0))
        if delay:
            delays[f"ff{k}"] = rng.integers(0, 8, (n, pre)).astype(float)

    output = LI(tau_mem=20.0, tau_syn=5.0)
    if case == "deep":
        layer(0, 12, n_in, False, delay=True, model=LIF(tau_mem=20.0, tau_syn=5.0, threshold=1.0))
        layer(1, 10, 12, True)
        layer(2, 9, 10, True)
        weights["rec2"] = -np.abs(weights["rec2"])  # an inhibitory-only synapse
        weights["ff1"] = np.abs(weights["ff1"])  # an excitatory-only synapse
        kw = {}
        pre = 9
    else:  # stress: 24-bit current wrap, voltage saturation, a readout that fires and resets
        # tau_syn 4096 / tau_mem 136 ms: the chip decays iDecay 1, vDecay 30
        layer(0, 24, n_in, True, mean=0.6, model=LoihiCUBA(tau_mem=136.0, tau_syn=4096.0, threshold=400.0))
        kw = dict(readout_vth=2**17 - 1)
        pre = 24
    weights["out"] = rng.normal(0, 0.3, (n_out, pre))
    if case == "stress":
        weights["out"] = np.abs(weights["out"]) + 0.3
        output = LI(tau_mem=4096.0, tau_syn=4096.0)  # decays 1 and 1
    fnet = FloatNetwork.layered(weights, models, output, T, delays=delays, readout=dict(name="exp_mean_v"))
    return quantize(fnet, **kw)[0]


def _data(rng, n, n_in, T, rate):
    samples = [(rng.integers(0, T, m), rng.integers(0, n_in, m)) for m in rng.integers(rate[0], rate[1], n)]
    return from_samples(samples, rng.integers(0, 4, n), n_channels=n_in, n_steps=T, dt=1.0, n_classes=4)


@needs_lava
@pytest.mark.parametrize("case", ["deep", "stress"])
def test_emulator_is_bit_exact_with_lava(tmp_path, case):
    rng = np.random.default_rng({"deep": 11, "stress": 12}[case])
    T = 80 if case == "deep" else 300
    chip = _network(rng, T, case)
    data = _data(rng, 4, 14, T, (100, 400) if case == "deep" else (2000, 3000))
    emu = emulate(chip, data, n_record=len(data))
    assert emu.counts[:, : -chip.n_out].sum() > 0, "the test network must spike"
    write_netx(chip, tmp_path / "model.net")
    write_samples(data, emu, len(data), tmp_path / "samples.npz")
    res = check(LAVA_PYTHON, tmp_path / "model.net", tmp_path / "samples.npz", tmp_path / "lava.npz", timeout=900)
    assert res.samples == 4 and res.steps == T
    assert res.bit_exact, res.message()
    if case == "stress":
        assert emu.output_spikes > 0  # the readout fired and was reset, in Lava as well


@needs_lava
def test_deploy_runs_the_lava_check(tmp_path):
    rng = np.random.default_rng(13)
    T = 40
    chip_export = FloatNetwork.layered(
        dict(
            ff0=rng.normal(0.3, 0.3, (16, 14)),
            rec0=rng.normal(0, 0.3, (16, 16)),
            out=rng.normal(0, 0.3, (4, 16)),
        ),
        [LoihiCUBA(tau_mem=20.0, tau_syn=5.0, threshold=1.0)],
        LI(tau_mem=20.0, tau_syn=5.0),
        T,
        readout=dict(name="exp_mean_v"),
    )
    test = _data(rng, 12, 14, T, (80, 200))
    fields = LoihiTarget(lava="required", samples=5).deploy(chip_export, DatasetSplits(train=test, test=test), tmp_path)
    assert fields["lava"]["status"] == "checked"
    assert fields["lava"]["samples_checked"] == 5 and fields["lava"]["bit_exact"] is True
    assert "bit-exact" in (tmp_path / "deploy" / "loihi2" / "report.md").read_text()
