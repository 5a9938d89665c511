"""The neuron model a user adds: examples/eventkit_resonate declares a resonate-and-fire neuron as
a linear system through the public plugin API only, and it trains with exact gradients."""

import json
import sys
from pathlib import Path

import numpy as np
import torch

from engine_cases import assert_cross_entropy_gradients_match
from eventkit.engine import LI, EventpropNet, ExpWeightedMeanV
from eventkit.plugin.testing import installed_apart, random_data, run_cli

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "eventkit_resonate"


def _model():
    sys.path.insert(0, str(EXAMPLE))
    try:
        from eventkit_resonate.model import ResonateAndFire
    finally:
        sys.path.remove(str(EXAMPLE))
    return ResonateAndFire


def test_resonate_and_fire_gradients_match_finite_differences():
    """Fails if the description-driven kernels mishandle complex eigenvalues (the oscillation's
    sub-step propagators and their adjoints) or a threshold on a state no input reaches."""
    rf = _model()(frequency=40.0, tau=25.0, tau_syn=4.0, threshold=0.3)
    rng = np.random.default_rng(4)
    net = EventpropNet(
        10,
        3,
        hidden=[16, 12],
        recurrent=True,
        neuron=rf,
        output=LI(),
        readout=ExpWeightedMeanV(),
        n_steps=80,
        dtype=torch.float64,
        init=dict(ff_mean=1.0, ff_std=0.5, rec_mean=0.0, rec_std=0.3, out_mean=0.1, out_std=0.3),
        generator=torch.Generator().manual_seed(1),
    )
    assert net.plan.described is not None and np.iscomplex(net.plan.described.lam[0]).any()
    data = random_data(rng, 3, 10, 80, rate=(40, 60))
    assert net(data).counts.sum() > 50
    assert_cross_entropy_gradients_match(net, data, rng, min_checked=20)


def test_resonate_and_fire_oscillates_and_prefers_its_period():
    """A single neuron driven by input pulses: five pulses one period apart build the oscillation
    up to a spike, five half a period apart cancel it. Fails if the model's matrix or the engine's
    propagator loses the rotation (without it, the closer pulses would sum higher and fire)."""
    from eventkit.data import from_samples

    rf = _model()(frequency=50.0, tau=40.0, tau_syn=1.0, threshold=1.5)
    period = 20  # steps of 1 ms
    pulses = {"resonant": np.arange(0, 5 * period, period), "anti": np.arange(0, 5 * period, period // 2)[:5]}
    fired = {}
    for key, steps in pulses.items():
        data = from_samples([(steps, np.zeros_like(steps))], [0], n_channels=1, n_steps=150, dt=1.0, n_classes=2)
        net = EventpropNet(1, 2, hidden=1, recurrent=False, neuron=rf, output=LI(), n_steps=150, dtype=torch.float64)
        with torch.no_grad():
            net.ff0.fill_(40.0)  # each pulse moves x by about 1
        fired[key] = int(net.simulate(data)["n_rec"][0])
    assert fired["resonant"] >= 1 and fired["anti"] == 0, fired


def test_example_model_plugin_installed_as_its_own_distribution_trains(tmp_path):
    """pip-installs examples/eventkit_resonate into a separate directory and trains its recipe
    from the command line: the neuron, its config and the experiment come from the plugin; the
    core is unchanged."""
    env = installed_apart(EXAMPLE, tmp_path / "site")
    run = tmp_path / "run"
    out = run_cli(
        "+experiment=rf_yinyang",
        "dataset.n_train=1000",
        "dataset.n_val=200",
        "dataset.n_test=300",
        "network.hidden=100",
        "trainer.epochs=4",
        "trainer.progress=false",
        f"hydra.run.dir={run}",
        env=env,
        cwd=tmp_path,
        timeout=900,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads((run / "summary.json").read_text())
    assert "name: rf" in (run / "config_resolved.yaml").read_text()
    assert summary["test_accuracy"] > 0.6, summary["test_accuracy"]  # chance is about 0.37
