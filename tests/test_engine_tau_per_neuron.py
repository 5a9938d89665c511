"""Time constants learned per neuron (``tau_per_neuron``): exact Eventprop gradients against finite
differences of the same simulator and against continuous time, the per-layer case as a special
case, the initialisations and the refusals."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from continuous_reference import ContinuousNet
from engine_cases import CHANNELS, DURATION, LABEL, TIMES, reference_case
from eventkit.engine import ALIF, LI, LIF, EventpropNet, ExpWeightedMeanV
from eventkit.plugin.testing import checkpoint_test_accuracy, random_data, run_cli, tiny_run
from eventkit.rundir.checkpoints import load_checkpoint
from eventkit.rundir.layout import LAST

RANGES = {"tau_mem": [8.0, 60.0], "tau_syn": [1.0, 7.0]}
#: whole-step (round) and fractional (exact) delays on every kind of connection
ROUND_DELAYS = {kind: {"max": 6.0, "mode": "round", "init": [0.0, 6.0]} for kind in ("ff", "rec", "out")}
EXACT_DELAYS = {kind: {**spec, "mode": "exact"} for kind, spec in ROUND_DELAYS.items()}


def make_net(readout=ExpWeightedMeanV(), per_neuron=True, init="log_uniform", dtype=torch.float64, **options):
    options = {"learn_tau": RANGES, **options}
    return EventpropNet(
        10,
        3,
        hidden=[12, 9],
        recurrent=True,
        output=LIF(threshold=0.3) if readout.needs_output_spikes else LI(),
        readout=readout,
        n_steps=80,
        dtype=dtype,
        init=dict(ff_mean=0.6, ff_std=0.15, rec_mean=0.0, rec_std=0.1, out_mean=0.1, out_std=0.3),
        generator=torch.Generator().manual_seed(3),
        tau_per_neuron=per_neuron,
        tau_init=init,
        **options,
    )


def loss_and_counts(net, data, labels):
    out = net(data)
    return F.cross_entropy(out.readout * 3.0, labels), out.counts.sum().item()


def assert_elementwise_gradients_match(params, loss_and_counts, counts, min_checked, per_param=None):
    """Every element's ``.grad`` (or ``per_param`` random ones of each parameter) against a central
    difference (step 1e-7 relative) with the spike count unchanged: relative error <= 1e-3 (plus
    1e-9: a silent neuron's is 0), with at least ``min_checked`` elements where ``|fd| > 1e-6``."""
    checked = 0
    rng = np.random.default_rng(0)
    for p in params:
        grad = p.grad.clone().reshape(-1)
        p = p.view(-1)
        picks = range(p.numel()) if per_param is None else rng.choice(p.numel(), per_param, replace=False)
        for k in picks:
            h = 1e-7 * max(abs(p[k].item()), 1.0)
            values = []
            with torch.no_grad():
                for sign in (1, -1):
                    p[k] += sign * h
                    lo, c = loss_and_counts()
                    p[k] -= sign * h
                    assert c == counts, "the perturbation changed a spike count"
                    values.append(lo.item())
            fd = (values[0] - values[1]) / (2 * h)
            checked += abs(fd) > 1e-6
            assert abs(grad[k].item() - fd) <= 1e-3 * abs(fd) + 1e-9, (p.shape, k, grad[k].item(), fd)
    assert checked >= min_checked, checked


@pytest.mark.parametrize(
    "neuron, delays",
    [(LIF(), None), (LIF(), ROUND_DELAYS), (LIF(), EXACT_DELAYS), (ALIF(adapt_step=0.1, tau_adapt=100.0), None)],
    ids=["lif", "lif-round-delays", "lif-exact-delays", "alif"],
)
def test_per_neuron_time_constant_gradients_match_finite_differences(neuron, delays):
    """Two recurrent hidden layers whose 42 neurons each have their own tau_mem and tau_syn (drawn
    log-uniformly), without delays, with whole-step and with fractional delays on the input,
    recurrent, hidden -> hidden and output connections, and ALIF neurons (their adaptation per
    layer, their tau_mem and tau_syn per neuron): every neuron's gradient, and the delays', is
    that of the simulated network. Fails if a target's arrival used another neuron's decays or
    another arrival time, or a term went to the population's row instead of the neuron's
    (propagator, restart, arrival, threshold crossing, delayed arrival's pairing)."""
    rng = np.random.default_rng(1)
    net = make_net(delays=delays, neuron=neuron)
    data = random_data(rng, 3, 10, 80, rate=(60, 100))
    labels = torch.as_tensor(data.labels)
    loss, counts = loss_and_counts(net, data, labels)
    assert counts > 100
    loss.backward()
    params = net.time_constant_parameters()
    assert [tuple(p.shape) for p in params] == [(12,), (12,), (9,), (9,)]
    assert float(params[0].detach().std()) > 5.0  # heterogeneous
    assert_elementwise_gradients_match(params, lambda: loss_and_counts(net, data, labels), counts, 20)
    if delays is EXACT_DELAYS:  # (round mode's delay gradient is straight-through: no difference to check)
        assert (np.mod(net.delays_ms()["rec0"], 1.0) > 0.5).mean() > 0.3  # many arrive a step late
        assert_elementwise_gradients_match(
            net.delay_parameters(), lambda: loss_and_counts(net, data, labels), counts, 20, per_param=12
        )


@pytest.mark.parametrize(
    "delays",
    [None, ROUND_DELAYS, EXACT_DELAYS, {"ff": EXACT_DELAYS["ff"]}],
    ids=["undelayed", "round", "exact", "ff-only"],
)
def test_per_layer_time_constants_are_the_special_case_of_equal_per_neuron_ones(delays):
    """The same network with one tau per layer and with per-neuron taus all equal to it simulates
    the same readout (to rounding: the per-neuron arrivals use a series for exp) and the per-layer
    gradient is the sum of the per-neuron ones, without and with delays on every connection (the
    per-neuron path has its own delayed arrivals). Fails if a neuron's row or gradient is mixed up
    with its population's, a per-neuron term is lost or counted twice, a delayed arrival lands
    at another grid time than the per-layer path puts it, or a spike's connections are taken for
    one another (delays on the feed-forward connections only)."""
    rng = np.random.default_rng(2)
    data = random_data(rng, 4, 10, 80, rate=(60, 100))
    labels = torch.as_tensor(data.labels)
    nets = [make_net(per_neuron=p, init="constant", delays=delays) for p in (False, True)]
    outs = []
    for net in nets:
        loss, counts = loss_and_counts(net, data, labels)
        loss.backward()
        outs.append((net(data).readout.detach(), counts))
    assert outs[0][1] == outs[1][1] and outs[0][1] > 100
    torch.testing.assert_close(outs[0][0], outs[1][0], rtol=1e-12, atol=1e-12)
    for layer, neurons in zip(nets[0].time_constant_parameters(), nets[1].time_constant_parameters()):
        assert neurons.shape[0] > 1
        torch.testing.assert_close(neurons.grad.sum(), layer.grad, rtol=1e-9, atol=0)
    for a, b in zip(
        [*nets[0].weight_parameters(), *nets[0].delay_parameters()],
        [*nets[1].weight_parameters(), *nets[1].delay_parameters()],
    ):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-9, atol=1e-12)


def test_per_neuron_gradients_converge_to_continuous_time_as_dt_goes_to_zero():
    """An independent event-driven continuous-time network whose five hidden neurons each have
    their own tau_mem and tau_syn; its gradient is its own central finite difference per neuron.
    Fails if the engine differentiates another model than the one it converges to."""
    w = dict(
        ff0=np.random.default_rng(4).normal(1.0, 0.4, (5, 4)),
        rec0=np.random.default_rng(5).normal(0.0, 0.3, (5, 5)),
        out=np.random.default_rng(6).normal(0.0, 1.0, (2, 5)),
    )
    tau_mem, tau_syn = np.array([14.0, 18.0, 22.0, 26.0, 30.0]), np.array([6.0, 3.0, 5.0, 4.0, 7.0])

    def continuous(tm, ts):
        net = ContinuousNet(w["ff0"], w["rec0"], w["out"], tm, ts, duration=DURATION, out_taus=(20.0, 5.0))
        mean_v, spikes = net.run(TIMES, CHANNELS)
        return F.cross_entropy(torch.tensor(mean_v)[None], torch.tensor([LABEL])).item(), [len(s) for s in spikes]

    _, counts = continuous(tau_mem, tau_syn)
    assert sum(counts) >= 8 and sum(c > 0 for c in counts) >= 3, counts
    ref = []
    for which in (0, 1):
        for j in range(5):
            vals = []
            for sign in (1, -1):
                taus = [tau_mem.copy(), tau_syn.copy()]
                taus[which][j] += sign * 1e-6
                loss, c = continuous(*taus)
                assert c == counts
                vals.append(loss)
            ref.append((vals[0] - vals[1]) / 2e-6)
    ref = np.array(ref)

    def engine(dt):
        net, data = reference_case(
            dt, w, learn_tau={"tau_mem": [10.0, 40.0], "tau_syn": [dt, 8.0]}, tau_per_neuron=True
        )
        with torch.no_grad():
            net.tau_mem0.copy_(torch.tensor(tau_mem))
            net.tau_syn0.copy_(torch.tensor(tau_syn))
        F.cross_entropy(net(data).readout, torch.tensor([LABEL])).backward()
        return np.concatenate([net.tau_mem0.grad.numpy(), net.tau_syn0.grad.numpy()])

    errors = {dt: np.linalg.norm(engine(dt) - ref) / np.linalg.norm(ref) for dt in (1.0, 0.1, 0.01)}
    print("relative per-neuron tau-gradient error vs continuous time:", errors)
    assert errors[0.1] < errors[1.0]
    assert errors[0.01] < errors[0.1]
    assert errors[0.01] < 0.02


@pytest.mark.parametrize("init", ["log_uniform", "gamma"])
def test_initial_time_constants_follow_their_distribution_within_the_range(init):
    """log_uniform: uniform in log tau over the range; gamma: mean at the neuron's value, clipped
    to the range. Fails if the draw ignores the range, the distribution or the generator."""
    kw = dict(hidden=4000, learn_tau={"tau_mem": [6.0, 200.0]}, tau_per_neuron=True, tau_init=init, n_steps=10)

    def draw(seed):
        net = EventpropNet(3, 2, generator=torch.Generator().manual_seed(seed), **kw)
        return net.tau_mem0.detach().double().numpy()

    tau = draw(0)
    assert tau.min() >= 6.0 and tau.max() <= 200.0
    if init == "log_uniform":
        u = (np.log(tau) - np.log(6.0)) / (np.log(200.0) - np.log(6.0))
        assert abs(u.mean() - 0.5) < 0.02 and abs((u < 0.25).mean() - 0.25) < 0.03
    else:
        assert abs(tau.mean() - 20.0) < 0.6  # LIF's tau_mem, k = 3: sd 11.5 ms
        assert abs(tau.std() - 20.0 / np.sqrt(3.0)) < 1.0
    np.testing.assert_array_equal(tau, draw(0))
    assert not np.array_equal(tau, draw(1))


def test_clamping_and_reloading_per_neuron_time_constants():
    net = make_net()
    with torch.no_grad():
        net.tau_mem0[:3] = torch.tensor([500.0, -1.0, 30.0], dtype=torch.float64)
    with pytest.raises(
        ValueError, match=r"tau_mem0: per-neuron time constants must lie in \[8, 60\].*clamp_parameters"
    ):
        net(random_data(np.random.default_rng(0), 1, 10, 80))
    net.clamp_parameters()
    assert net.tau_mem0[:3].tolist() == [60.0, 8.0, 30.0]
    other = make_net(init="constant")
    other.load_state_dict(net.state_dict())
    assert torch.equal(other.tau_mem0, net.tau_mem0)
    layers = other.time_constants()
    assert layers[0]["tau_mem"][:3].tolist() == [60.0, 8.0, 30.0] and layers[1]["tau_syn"].shape == (9,)
    assert other.neurons[0].tau_mem == 20.0  # the model keeps its declared value


@pytest.mark.parametrize(
    "options, words",
    [
        (dict(per_neuron=False, init="gamma"), "tau_init=gamma: draws a value per neuron"),
        (dict(learn_tau=None, init="constant"), "tau_per_neuron: no time constant is learnable"),
        (dict(init="normal"), "tau_init: expected one of"),
        (dict(tau_gamma_shape=0.0), "tau_gamma_shape: must be a number > 0"),
        (
            dict(neuron=ALIF(), learn_tau={"tau_mem": [8.0, 60.0], "tau_adapt": [50.0, 400.0]}),
            "['tau_adapt'] are learned per layer only",
        ),
    ],
)
def test_bad_per_neuron_settings_are_refused_in_one_line(options, words):
    with pytest.raises(ValueError) as err:
        make_net(**options)
    message = str(err.value)
    assert words in message and "Fix:" in message and "\n" not in message


@pytest.mark.slow  # a training run in a subprocess (tens of seconds)
def test_the_app_trains_per_neuron_time_constants(tmp_path):
    """Through the config: the checkpoint holds one moved value per neuron inside the range (all
    started equal), and
    the checkpoint's test accuracy recomputes (the rebuilt network takes the per-neuron values)."""
    run = tmp_path / "run"
    out = run_cli(
        *tiny_run(epochs=2),
        "network.learn_tau={tau_mem: [8, 60], tau_syn: [1, 6]}",
        "network.tau_per_neuron=true",
        "network.tau_lr=0.5",
        f"hydra.run.dir={run}",
        cwd=tmp_path,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    tensors, meta = load_checkpoint(run / "checkpoints" / LAST)
    tau_mem = tensors["model.tau_mem0"].double().numpy()
    # they all started at LIF's 20 ms (tau_init=constant): each neuron's moved on its own
    assert tau_mem.ndim == 1 and len(np.unique(tau_mem)) == len(tau_mem) > 1 and not np.any(tau_mem == 20.0)
    assert tau_mem.min() >= 8.0 and tau_mem.max() <= 60.0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["test_accuracy"] == checkpoint_test_accuracy(run)[0]


def test_cpu_deploy_writes_every_neurons_time_constants(tmp_path):
    """target=cpu writes a per-neuron layer's time constants beside its weights and says so in
    network.json. Catches an export whose neuron description (the declared values) is all a reader
    gets."""
    from safetensors.numpy import load_file

    from eventkit.components.targets import CpuTarget

    net = make_net()
    fields = CpuTarget().deploy(net, None, tmp_path)
    tensors = load_file(str(tmp_path / "deploy" / "cpu" / "network.safetensors"))
    for k, layer in enumerate(net.time_constants()):
        for key in ("tau_mem", "tau_syn"):
            np.testing.assert_array_equal(tensors[f"layer{k}.{key}"], layer[key].astype(np.float32))
    description = json.loads((tmp_path / "deploy" / "cpu" / "network.json").read_text())
    assert [layer["per_neuron"] for layer in description["layers"]] == [["tau_mem", "tau_syn"]] * 2
    assert fields["parameters"] == sum(t.size for t in tensors.values())
