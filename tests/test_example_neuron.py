"""The neuron model a user adds: examples/eventkit_resonate declares a resonate-and-fire neuron as
a linear system through the public plugin API only, and it trains with exact gradients."""

import json
import sys
from pathlib import Path

import numpy as np
import torch

from engine_cases import assert_cross_entropy_gradients_match, constant_gradients_against_fd
from eventkit.engine import LI, EventpropNet, ExpWeightedMeanV
from eventkit.plugin.testing import installed_apart, random_data, run_cli
from eventkit.rundir.checkpoints import load_checkpoint
from eventkit.rundir.layout import LAST

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "eventkit_resonate"


def _model():
    sys.path.insert(0, str(EXAMPLE))
    try:
        from eventkit_resonate.model import ResonateAndFire
    finally:
        sys.path.remove(str(EXAMPLE))
    return ResonateAndFire


def _rf_net(**kw) -> EventpropNet:
    """Two recurrent layers of the example's neuron (40 Hz, threshold 0.3), an LI output, float64."""
    return EventpropNet(
        10,
        3,
        hidden=[16, 12],
        recurrent=True,
        neuron=_model()(frequency=40.0, tau=25.0, tau_syn=4.0, threshold=0.3),
        output=LI(),
        readout=ExpWeightedMeanV(),
        n_steps=80,
        dtype=torch.float64,
        init=dict(ff_mean=1.0, ff_std=0.5, rec_mean=0.0, rec_std=0.3, out_mean=0.1, out_std=0.3),
        generator=torch.Generator().manual_seed(1),
        **kw,
    )


def test_resonate_and_fire_gradients_match_finite_differences():
    """Fails if the description-driven kernels mishandle complex eigenvalues (the oscillation's
    sub-step propagators and their adjoints) or a threshold on a state no input reaches."""
    rng = np.random.default_rng(4)
    net = _rf_net()
    assert net.plan.described is not None and np.iscomplex(net.plan.described.lam[0]).any()
    data = random_data(rng, 3, 10, 80, rate=(40, 60))
    assert net(data).counts.sum() > 50
    assert_cross_entropy_gradients_match(net, data, rng, min_checked=20)


def test_resonate_and_fire_learns_its_frequency_and_decay_with_exact_gradients():
    """``learn_tau`` on the example's own constants (declared in its ``learnable``; no engine
    change): dL/d(frequency), dL/d(tau), dL/d(tau_syn) of both layers against central differences
    (relative 1e-5, float64). Fails when the description's derivative or the backward pass's
    dL/d(A h), dL/du of a model with complex eigenvalues is wrong."""
    learn = {"frequency": [20.0, 80.0], "tau": [10.0, 50.0], "tau_syn": [2.0, 8.0]}
    net = _rf_net(learn_tau=learn)
    data = random_data(np.random.default_rng(6), 3, 10, 80, rate=(40, 60))
    assert net(data).counts.sum() > 50
    labels = torch.as_tensor(data.labels)
    names = [f"{key}{k}" for k in (0, 1) for key in learn]
    loss = lambda o: torch.nn.functional.cross_entropy(o.readout * 3.0, labels)  # noqa: E731
    checked = constant_gradients_against_fd(net, data, loss, names)
    assert all(checked.values()), checked  # every constant found a step that changes no spike
    for name, (engine, fd) in checked.items():
        assert abs(fd) > 1e-7, name
        assert abs(engine - fd) <= 1e-5 * abs(fd), (name, engine, fd)


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

    def train(run, *overrides):
        out = run_cli("+experiment=rf_yinyang", *overrides, f"hydra.run.dir={run}", env=env, cwd=tmp_path, timeout=900)
        assert out.returncode == 0, out.stderr[-3000:]

    run = tmp_path / "run"
    sizes = ("dataset.n_train=1000", "dataset.n_val=200", "dataset.n_test=300", "network.hidden=100")
    train(run, *sizes, "trainer.epochs=4", "trainer.progress=false")
    summary = json.loads((run / "summary.json").read_text())
    assert "name: rf" in (run / "config_resolved.yaml").read_text()
    assert summary["test_accuracy"] > 0.6, summary["test_accuracy"]  # chance is about 0.37
    # the model's own constants, learned through the config (its `learnable`), reported
    run = tmp_path / "run_learn"
    train(run, "trainer=smoke", "network.learn_tau={frequency: [20, 100], tau: [10, 50]}", "network.tau_lr=0.5")
    tensors, meta = load_checkpoint(run / "checkpoints" / LAST)
    assert len(meta["optimizer"]["param_groups"][1]["params"]) == 2  # frequency0, tau0: their own group
    frequency, tau = float(tensors["model.frequency0"]), float(tensors["model.tau0"])
    assert frequency != 50.0 and 20.0 <= frequency <= 100.0 and tau != 20.0 and 10.0 <= tau <= 50.0
    report = (run / "report.md").read_text()
    assert "| 0 | frequency | 50 |" in report and "| 0 | tau | 20 |" in report
