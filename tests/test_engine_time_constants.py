"""Learnable time constants (``learn_tau``): exact Eventprop gradients of tau_mem and tau_syn
against finite differences of the same simulator and against continuous time, and the checks
and bookkeeping around them."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from continuous_reference import ContinuousNet
from engine_cases import CHANNELS, DURATION, LABEL, TIMES, assert_scalar_gradients_match, reference_case
from eventkit.engine import LI, LIF, EventpropNet, ExpWeightedMeanV, FirstSpike
from eventkit.plugin.testing import checkpoint_test_accuracy, random_data, run_cli, tiny_run
from eventkit.rundir.checkpoints import load_checkpoint
from eventkit.rundir.layout import BEST, LAST

RANGES = {"tau_mem": [8.0, 60.0], "tau_syn": [1.0, 7.0]}


#: whole-step delays on every kind of connection (input, recurrent, hidden -> hidden, output)
ROUND_DELAYS = {kind: {"max": 6.0, "mode": "round", "init": [0.0, 6.0]} for kind in ("ff", "rec", "out")}
#: the same with fractional (sub-step) delays
EXACT_DELAYS = {kind: {**spec, "mode": "exact"} for kind, spec in ROUND_DELAYS.items()}


def make_net(readout, learn_tau=RANGES, seed=3, hidden=(12, 9), recurrent=True, dtype=torch.float64, delays=None):
    return EventpropNet(
        10,
        3,
        hidden=list(hidden),
        recurrent=recurrent,
        output=LIF(threshold=0.3) if readout.needs_output_spikes else LI(),
        readout=readout,
        n_steps=80,
        dtype=dtype,
        init=dict(ff_mean=0.5, ff_std=0.15, rec_mean=0.0, rec_std=0.1, out_mean=0.1, out_std=0.3),
        generator=torch.Generator().manual_seed(seed),
        learn_tau=learn_tau,
        delays=delays,
    )


def loss_and_counts(net, data, labels):
    out = net(data)
    return F.cross_entropy(out.readout * 3.0, labels), out.counts.sum().item()


@pytest.mark.parametrize("readout", [ExpWeightedMeanV(), FirstSpike(tau0=2.0)], ids=lambda r: r.name)
def test_time_constant_gradients_match_finite_differences(readout):
    """Two recurrent hidden layers, every hidden layer's tau_mem and tau_syn: the gradient is that
    of the simulated network. Fails if any term is missing: the propagator's (the sensitivities
    carried back between events), the restart's, the arrivals' decay or the threshold crossing's."""
    rng = np.random.default_rng(1)
    net = make_net(readout)
    data = random_data(rng, 3, 10, 80, rate=(40, 80))
    labels = torch.as_tensor(data.labels)
    loss, counts = loss_and_counts(net, data, labels)
    assert counts > 100
    loss.backward()
    params = net.time_constant_parameters()
    assert len(params) == 4
    assert_scalar_gradients_match(params, lambda: loss_and_counts(net, data, labels), counts, 1e-5)


@pytest.mark.parametrize("delays", [ROUND_DELAYS, EXACT_DELAYS], ids=["round", "exact"])
@pytest.mark.parametrize("kinds", [("ff", "rec", "out"), ("rec", "out")], ids=["all", "hidden-only"])
def test_time_constant_gradients_with_delays_match_finite_differences(kinds, delays):
    """The same check with delays on the input, recurrent, hidden -> hidden and output
    connections, and on the hidden ones only (then no input row writes the grid times' rows),
    whole-step (round) and fractional (exact): a delayed arrival pairs with the sensitivities and
    adjoints of the grid time it lands at (kept by grid time like the adjoint), and a fractional
    one's decays over the rest of its step depend on the target's time constants. Fails if a
    delayed arrival's terms are missing, read at another grid time than its arrival's (a late
    sub-step arrival lands one row further) or take the spike's remaining time for the
    arrival's."""
    rng = np.random.default_rng(5)
    net = make_net(ExpWeightedMeanV(), delays={kind: delays[kind] for kind in kinds})
    d = net.delays_ms()["rec0"]
    assert d.max() > 3.0
    if delays is EXACT_DELAYS:
        assert (np.mod(d, 1.0) > 0.5).mean() > 0.3  # many sub-step arrivals fall into the next step
    data = random_data(rng, 3, 10, 80, rate=(40, 80))
    labels = torch.as_tensor(data.labels)
    loss, counts = loss_and_counts(net, data, labels)
    assert counts > 100
    loss.backward()
    assert_scalar_gradients_match(
        net.time_constant_parameters(), lambda: loss_and_counts(net, data, labels), counts, 1e-5
    )


@pytest.mark.parametrize("delays", [None, ROUND_DELAYS, EXACT_DELAYS], ids=["undelayed", "round", "exact"])
def test_learning_time_constants_leaves_the_other_gradients_and_the_simulation_unchanged(delays):
    """A network with learn_tau at its initial values simulates and differentiates its weights
    (and delays) exactly as the same network without: the coefficient gradients ride along
    without touching the existing terms."""
    rng = np.random.default_rng(2)
    data = random_data(rng, 4, 10, 80, rate=(40, 80))
    labels = torch.as_tensor(data.labels)
    grads, readouts = [], []
    for learn in (None, RANGES):
        net = make_net(ExpWeightedMeanV(), learn_tau=learn, dtype=torch.float32, delays=delays)
        loss, _ = loss_and_counts(net, data, labels)
        loss.backward()
        readouts.append(net(data).readout.detach())
        grads.append([p.grad.clone() for p in [*net.weight_parameters(), *net.delay_parameters()]])
    assert torch.equal(readouts[0], readouts[1])
    for a, b in zip(*grads):
        assert torch.equal(a, b)


def _weights():
    rng = np.random.default_rng(4)
    return dict(ff0=rng.normal(1.0, 0.4, (5, 4)), rec0=rng.normal(0.0, 0.3, (5, 5)), out=rng.normal(0.0, 1.0, (2, 5)))


def _continuous_loss(w, tau_mem, tau_syn):
    net = ContinuousNet(w["ff0"], w["rec0"], w["out"], tau_mem, tau_syn, duration=DURATION, out_taus=(20.0, 5.0))
    mean_v, spikes = net.run(TIMES, CHANNELS)
    return F.cross_entropy(torch.tensor(mean_v)[None], torch.tensor([LABEL])).item(), [len(s) for s in spikes]


def _engine_gradient(w, tau_mem, tau_syn, dt):
    net, data = reference_case(
        dt,
        w,
        neuron=LIF(tau_mem=tau_mem, tau_syn=tau_syn),
        learn_tau={"tau_mem": [10.0, 40.0], "tau_syn": [dt, 8.0]},
    )
    F.cross_entropy(net(data).readout, torch.tensor([LABEL])).backward()
    return np.array([net.tau_mem0.grad.item(), net.tau_syn0.grad.item()])


def test_time_constant_gradients_converge_to_continuous_time_as_dt_goes_to_zero():
    """The reference is an independent event-driven continuous-time simulation; its tau gradient
    is its own central finite difference. Fails if the engine differentiates another model than
    the one it converges to (e.g. a propagator term taken at the wrong grid time)."""
    w, tau_mem, tau_syn, eps = _weights(), 20.0, 5.0, 1e-6
    _, counts = _continuous_loss(w, tau_mem, tau_syn)
    assert sum(counts) >= 8, counts
    ref = []
    for key in ("tau_mem", "tau_syn"):
        vals = []
        for sign in (1, -1):
            taus = {"tau_mem": tau_mem, "tau_syn": tau_syn}
            taus[key] += sign * eps
            loss, c = _continuous_loss(w, **taus)
            assert c == counts
            vals.append(loss)
        ref.append((vals[0] - vals[1]) / (2 * eps))
    ref = np.array(ref)
    errors = {
        dt: np.linalg.norm(_engine_gradient(w, tau_mem, tau_syn, dt) - ref) / np.linalg.norm(ref)
        for dt in (1.0, 0.1, 0.01)
    }
    print("relative tau-gradient error vs continuous time:", errors)
    assert errors[0.1] < errors[1.0]
    assert errors[0.01] < errors[0.1]
    assert errors[0.01] < 0.02


def test_a_student_moves_towards_its_teachers_time_constants():
    """Only the time constants train (the student has the teacher's weights): an MSE on the output
    trace of a teacher with tau_mem 30, tau_syn 3 ms takes the student's from 20 and 4 ms towards
    them and its loss down 100-fold. Fails for a wrong sign or a grossly wrong scale of either
    gradient (the loss would not fall, or the values would move away)."""
    rng = np.random.default_rng(5)
    data = random_data(rng, 8, 10, 80, rate=(40, 80))

    def net_with(tau_mem, tau_syn, learn):
        return EventpropNet(
            10,
            2,
            hidden=16,
            recurrent=False,
            neuron=LIF(tau_mem=tau_mem, tau_syn=tau_syn),
            n_steps=80,
            dtype=torch.float64,
            init=dict(ff_mean=0.6, ff_std=0.2, out_mean=0.5, out_std=0.3),
            generator=torch.Generator().manual_seed(1),
            learn_tau={"tau_mem": [8.0, 60.0], "tau_syn": [1.0, 7.0]} if learn else None,
        )

    teacher, student = net_with(30.0, 3.0, False), net_with(20.0, 4.0, True)
    with torch.no_grad():
        target = teacher(data).trace
    groups = student.param_groups(tau_lr=0.2)
    assert groups[1]["params"] == student.time_constant_parameters() and groups[1]["fixed_lr"]
    opt = torch.optim.Adam(groups[1:], lr=0.2)
    losses = []
    for _ in range(100):
        opt.zero_grad()
        loss = F.mse_loss(student(data).trace, target)
        loss.backward()
        losses.append(loss.item())
        opt.step()
        student.clamp_parameters()
    assert losses[-1] < 0.01 * losses[0], (losses[0], losses[-1])
    assert student.tau_mem0.item() > 21.0
    assert abs(student.tau_syn0.item() - 3.0) < 0.5
    # what exports read: the populations' models carry the learned values
    model = student.topology.hidden[0].model
    assert (model.tau_mem, model.tau_syn) == (student.tau_mem0.item(), student.tau_syn0.item())
    assert student.neurons[0] == model


def test_clamping_keeps_time_constants_in_range_and_reloads_with_the_state():
    net = make_net(ExpWeightedMeanV())
    with torch.no_grad():
        net.tau_mem0.fill_(500.0)
        net.tau_syn1.fill_(-3.0)
    net.clamp_parameters()
    assert net.tau_mem0.item() == 60.0 and net.tau_syn1.item() == 1.0
    other = make_net(ExpWeightedMeanV())
    other.load_state_dict(net.state_dict())
    assert other.neurons[1].tau_syn == 1.0 and other.topology.hidden[0].model.tau_mem == 60.0


@pytest.mark.parametrize(
    "learn_tau, words",
    [
        ({"tau_mem": [30.0, 60.0]}, "excludes hidden layer 0's initial tau_mem=20"),
        ({"tau_mem": [4.0, 60.0]}, "may meet"),
        ({"tau_syn": [1.0, 25.0]}, "may meet"),
        ({"tau_syn": [0.5, 4.0]}, "dt=1.0 <= min < max"),
        ({"tau_mem": [float("nan"), 60.0]}, "dt=1.0 <= min < max"),
        ({"tau_mem": [60.0, 8.0]}, "dt=1.0 <= min < max"),
        ({"tau_mem": "fast"}, "expected a range"),
        ({"threshold": [0.5, 2.0]}, "cannot learn 'threshold'"),
        ([("tau_mem", 1)], "expected {time constant"),
    ],
)
def test_bad_learn_tau_is_refused_in_one_line_naming_the_key(learn_tau, words):
    with pytest.raises(ValueError) as err:
        make_net(ExpWeightedMeanV(), learn_tau=learn_tau)
    assert words in str(err.value) and "\n" not in str(err.value)


def test_the_app_trains_time_constants_in_their_own_group(tmp_path):
    """network.learn_tau through the config: the optimizer holds the time constants in their own
    unscheduled group at network.tau_lr, the checkpoint holds moved values inside their range,
    and the checkpoint's test accuracy recomputes (the rebuilt network loads them)."""
    run = tmp_path / "run"
    out = run_cli(
        *tiny_run(epochs=2),
        "network.learn_tau={tau_mem: [8, 60], tau_syn: [1, 6]}",
        "network.tau_lr=0.5",
        f"hydra.run.dir={run}",
        cwd=tmp_path,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    tensors, meta = load_checkpoint(run / "checkpoints" / LAST)
    weights, taus = meta["optimizer"]["param_groups"]
    assert len(taus["params"]) == 2 and taus["lr"] == 0.5 and taus["fixed_lr"] is True
    tau_mem, tau_syn = float(tensors["model.tau_mem0"]), float(tensors["model.tau_syn0"])
    assert tau_mem != 20.0 and 8.0 <= tau_mem <= 60.0
    assert tau_syn != 5.0 and 1.0 <= tau_syn <= 6.0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["test_accuracy"] == checkpoint_test_accuracy(run)[0]
    best, _ = load_checkpoint(run / "checkpoints" / BEST)  # the reported network's, in report.md
    report = (run / "report.md").read_text()
    for key, configured in (("tau_mem", 20.0), ("tau_syn", 5.0)):
        v = float(best[f"model.{key}0"])
        assert f"| 0 | {key} | {configured:.4g} | {v:.4g} | {v:.4g} | {v:.4g} |" in report


def test_bad_learn_tau_in_the_config_is_one_line_and_starts_nothing(tmp_path):
    run = tmp_path / "run"
    out = run_cli(*tiny_run(), "network.learn_tau={tau_mem: [30, 60]}", f"hydra.run.dir={run}", cwd=tmp_path)
    assert out.returncode != 0
    assert "learn_tau.tau_mem" in out.stderr and "excludes" in out.stderr
    assert not (run / "metrics.jsonl").exists()
