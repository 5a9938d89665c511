"""Models given only by their description (``NeuronModel.dynamics``) run on the description-driven
kernels: the same simulation and gradients as the specialised kernels for the LIF family, exact
gradients (finite differences) for a model those kernels cannot run, and one-line refusals of
descriptions that do not fit."""

from dataclasses import dataclass, replace

import numpy as np
import pytest
import torch

from engine_cases import Oscillator, assert_cross_entropy_gradients_match, constant_gradients_against_fd
from eventkit.engine import ALIF, LI, LIF, Delay, Described, EventpropNet, ExpWeightedMeanV, FirstSpike, NeuronModel
from eventkit.engine import network as network_module
from eventkit.engine.backends.cpu import CpuBackend
from eventkit.engine.dynamics import LinearDynamics
from eventkit.plugin.testing import random_data
from test_engine_delays import fd_by_parameter


INIT = dict(ff_mean=0.4, ff_std=0.3, rec_mean=0.0, rec_std=0.2, out_mean=0.2, out_std=0.3)


def make_net(neuron, output, readout=ExpWeightedMeanV(), dtype=torch.float64, **kw):
    return EventpropNet(
        10,
        4,
        hidden=[20, 15],
        recurrent=True,
        neuron=neuron,
        output=output,
        readout=readout,
        n_steps=80,
        dtype=dtype,
        init=kw.pop("init", INIT),
        generator=torch.Generator().manual_seed(0),
        **kw,
    )


def run(net, data):
    out = net(data)
    loss = (out.trace**2).sum() * 0.1 + out.readout.sum() + 0.01 * out.counts.sum()
    loss = loss + 0.01 * torch.where(out.t_first < 80, out.t_first, 0.0).sum()
    loss.backward()
    return out, {n: p.grad.clone() for n, p in net.named_parameters()}, net.simulate(data)


def delays(mode: str, init=(0.0, 6.0)) -> dict:
    """Learnable delays on every connection kind (input, recurrent, hidden -> hidden, output)."""
    return {kind: Delay(max=6.0, init=init, mode=mode) for kind in ("ff", "rec", "out")}


@pytest.mark.parametrize(
    "neuron, output, readout, delay",
    [
        (LIF(), LI(), ExpWeightedMeanV(), None),
        (ALIF(tau_adapt=50.0, adapt_step=0.3), LI(), ExpWeightedMeanV(), None),
        (LIF(), LIF(tau_mem=15.0, threshold=0.3), FirstSpike(), None),
        (LIF(), LI(), ExpWeightedMeanV(), delays("exact")),
        (ALIF(tau_adapt=50.0, adapt_step=0.3), LI(), ExpWeightedMeanV(), delays("exact")),
        (LIF(), LIF(tau_mem=15.0, threshold=0.3), FirstSpike(), delays("exact")),
        (LIF(), LI(), ExpWeightedMeanV(), delays("round")),
        (LIF(), LI(), ExpWeightedMeanV(), delays("exact", init=(0.0, 0.0))),
    ],
    ids=[
        "lif",
        "alif",
        "lif-output-first-spike",
        "lif-exact-delays",
        "alif-exact-delays",
        "lif-output-first-spike-exact-delays",
        "lif-round-delays",
        "lif-zero-learnable-delays",
    ],
)
def test_described_kernels_reproduce_the_specialised_kernels(neuron, output, readout, delay):
    """The LIF family described as a linear system: the description-driven kernels give the
    specialised kernels' spikes, trace and gradients (weights and delays) to rounding. Fails on any
    error in the generic forward map (propagator, crossing, reset, delivery, a delayed arrival's
    grid time or remaining decay, input or hidden) or its adjoint (transposed propagator, spike
    jumps, first-spike and regulariser terms, the adjoint a delayed arrival reads, weight and delay
    gradients)."""
    data = random_data(np.random.default_rng(1), 3, 10, 80, rate=(80, 120))
    fast, g_fast, s_fast = run(make_net(neuron, output, readout, delays=delay), data)
    net = make_net(Described(neuron), Described(output), readout, delays=delay)
    assert net.plan.described is not None and make_net(neuron, output, readout).plan.described is None
    if delay is not None:
        assert len(g_fast) == 10  # five weights, five delays
        if delay["ff"].init[1] > 0 and delay["ff"].mode == "exact":
            assert (net.ff0_delay % 1.0 > 0.5).any()  # sub-step parts that arrive one grid time late
    slow, g_slow, s_slow = run(net, data)
    assert s_fast["n_rec"].sum() > 60 and np.array_equal(s_fast["n_rec"], s_slow["n_rec"])
    if isinstance(readout, FirstSpike):
        assert (s_fast["t_first"] < 80).sum() >= 3  # output spikes: the first-spike terms are checked
    for b, n in enumerate(s_fast["n_rec"]):
        assert np.array_equal(s_fast["rec_nrn"][b, :n], s_slow["rec_nrn"][b, :n])
        np.testing.assert_allclose(s_fast["rec_phi"][b, :n], s_slow["rec_phi"][b, :n], rtol=0, atol=1e-10)
    np.testing.assert_allclose(fast.trace.detach(), slow.trace.detach(), rtol=0, atol=1e-10)
    for name, g in g_fast.items():
        assert g.abs().max() > 0
        np.testing.assert_allclose(g_slow[name], g, rtol=1e-8, atol=1e-10 * g.abs().max().item(), err_msg=name)


def test_a_model_only_the_description_runs_has_exact_gradients():
    """An oscillating three-state model (no closed form the specialised kernels know): weight
    gradients against central differences of the same simulator, relative error <= 1e-3."""
    rng = np.random.default_rng(2)
    net = make_net(
        Oscillator(), LI(), init=dict(ff_mean=1.0, ff_std=0.5, rec_mean=0.0, rec_std=0.3, out_mean=0.1, out_std=0.3)
    )
    data = random_data(rng, 3, 10, 80, rate=(40, 60))
    assert net(data).counts.sum() > 50
    assert_cross_entropy_gradients_match(net, data, rng, min_checked=20)


def test_a_model_only_the_description_runs_has_exact_delay_gradients():
    """The oscillator with fractional delays on every connection kind: weight and delay gradients
    against central differences of the same simulator (relative error <= 1e-3 per parameter).
    Fails when a delayed arrival's decay, grid time or time derivative is wrong for a model whose
    input, threshold and membrane states differ."""
    rng = np.random.default_rng(3)
    net = make_net(
        Oscillator(),
        LI(),
        delays=delays("exact"),
        init=dict(ff_mean=1.0, ff_std=0.5, rec_mean=0.0, rec_std=0.3, out_mean=0.1, out_std=0.3),
    )
    data = random_data(rng, 3, 10, 80, rate=(40, 60))
    out = net(data)
    assert out.counts[:, :20].sum() > 30 and out.counts[:, 20:].sum() > 20, "both layers must spike"
    labels = torch.as_tensor(data.labels)
    checked = fd_by_parameter(net, data, lambda o: torch.nn.functional.cross_entropy(o.readout * 3.0, labels), rng)
    delay_names = {c.delay_name for c in net.topology.delayed}
    assert delay_names == {"ff0_delay", "ff1_delay", "rec0_delay", "rec1_delay", "out_delay"}
    assert all(len(checked[n][0]) >= 3 for n in delay_names)
    fd_all = np.concatenate([f for _, f in checked.values()])
    for name, (e, f) in checked.items():
        assert np.abs(f).max() > 0, name
        np.testing.assert_allclose(e, f, rtol=1e-3, atol=1e-6 * np.abs(fd_all).max(), err_msg=name)


@pytest.mark.parametrize("delay", [None, delays("exact")], ids=["undelayed", "exact-delays"])
def test_float32_and_thread_count_do_not_change_the_described_path(delay):
    """float32 states follow float64 to rounding; the gradients (weights and delays) do not depend
    on the thread count (fixed sample groups)."""
    import numba

    data = random_data(np.random.default_rng(3), 4, 10, 80, rate=(30, 50))
    init = dict(ff_mean=1.0, ff_std=0.5, rec_mean=0.0, rec_std=0.3, out_mean=0.1, out_std=0.3)
    _, g64, _ = run(make_net(Oscillator(), LI(), dtype=torch.float64, delays=delay, init=init), data)
    _, g32, _ = run(make_net(Oscillator(), LI(), dtype=torch.float32, delays=delay, init=init), data)
    assert len(g64) == (5 if delay is None else 10)
    for name in g64:
        assert g64[name].abs().max() > 0, name
        rel = (g32[name].double() - g64[name]).norm() / g64[name].norm()
        assert rel < 1e-3, name
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        _, g1, _ = run(make_net(Oscillator(), LI(), dtype=torch.float32, delays=delay, init=init), data)
    finally:
        numba.set_num_threads(threads)
    for name in g32:
        assert torch.equal(g1[name], g32[name]), name


LEARN_OSC = {
    "omega": [0.1, 0.4],
    "tau": [8.0, 30.0],
    "tau_syn": [2.0, 8.0],
    "gain": [0.5, 2.0],
    "level": [0.3, 0.8],
    "rest": [0.01, 0.3],
}


@pytest.mark.parametrize("delay", [None, delays("exact")], ids=["undelayed", "exact-delays"])
def test_learnable_constants_of_a_described_model_have_exact_gradients(delay):
    """The oscillator's omega, tau, tau_syn, input gain (u), threshold level (theta) and reset
    value (r), learned per layer in two recurrent layers: dL/d against central differences of the
    same simulator (relative error <= 1e-5; float64). Fails on any missing or wrong term: the
    propagator steps' sum (R), the sub-step propagators of a spike's own step and of its
    deliveries, the crossing phase's dependence on exp(A h) and on theta, the reset's offset, an
    input's or a delivery's u, or the pairing of arrivals with their targets' R; with fractional
    delays on every connection kind, also an arrival's E_q(r) at its own remaining time r and the
    R of the grid time where it is applied."""
    rng = np.random.default_rng(4)
    net = make_net(
        Oscillator(rest=0.1),
        LI(),
        learn_tau=LEARN_OSC,
        delays=delay,
        init=dict(ff_mean=1.0, ff_std=0.5, rec_mean=0.0, rec_std=0.3, out_mean=0.1, out_std=0.3),
    )
    data = random_data(rng, 3, 10, 80, rate=(40, 60))
    out = net(data)
    assert out.counts[:, :20].sum() > 30 and out.counts[:, 20:].sum() > 20, "both layers must spike"
    labels = torch.as_tensor(data.labels)
    names = [f"{key}{k}" for k in (0, 1) for key in LEARN_OSC]
    checked = constant_gradients_against_fd(
        net, data, lambda o: torch.nn.functional.cross_entropy(o.readout * 3.0, labels), names
    )
    assert all(checked.values()), checked  # every constant found a step that changes no spike
    for name, (engine, fd) in checked.items():
        assert abs(fd) > 1e-6, name
        assert abs(engine - fd) <= 1e-5 * abs(fd), (name, engine, fd)
    # a second call gives the same gradients bit for bit: the per-worker sums start from zero
    first = {n: p.grad.clone() for n, p in net.named_parameters()}
    net.zero_grad()
    torch.nn.functional.cross_entropy(net(data).readout * 3.0, labels).backward()
    for n, p in net.named_parameters():
        assert torch.equal(p.grad, first[n]), n


@pytest.mark.parametrize(
    "output, readout, delay",
    [
        (LI(), ExpWeightedMeanV(), None),
        (LIF(threshold=0.3), FirstSpike(tau0=5.0), None),
        (LI(), ExpWeightedMeanV(), delays("exact")),
        (LI(), ExpWeightedMeanV(), delays("round")),
    ],
    ids=["li", "first-spike", "exact-delays", "round-delays"],
)
def test_a_described_lif_learns_its_time_constants_as_the_specialised_kernels_do(output, readout, delay):
    """LIF's tau_mem and tau_syn learned per layer: through its description (A h and u and the
    kernels' dL/d of them) they get the gradients the specialised kernels give through their
    closed-form coefficients -- two derivations that share nothing past the forward map.
    Relative 1e-7 (the description's derivative is a fourth-order difference, ~1e-12)."""
    learn = {"tau_mem": [10.0, 40.0], "tau_syn": [2.0, 8.0]}
    data = random_data(np.random.default_rng(5), 3, 10, 80, rate=(80, 120))
    labels = torch.as_tensor(data.labels)
    grads = []
    for described in (False, True):
        net = make_net(Described(LIF()) if described else LIF(), output, readout, learn_tau=learn, delays=delay)
        assert (net.plan.described is not None) == described
        out = net(data)
        loss = torch.nn.functional.cross_entropy(out.readout, labels) + 0.1 * (out.trace**2).mean()
        loss.backward()
        grads.append({n: p.grad.clone() for n, p in net.named_parameters()})
    assert set(grads[0]) >= {"tau_mem0", "tau_syn0", "tau_mem1", "tau_syn1"}
    for name, g in grads[0].items():
        assert g.abs().max() > 0, name
        np.testing.assert_allclose(grads[1][name], g, rtol=1e-7, atol=1e-9 * g.abs().max().item(), err_msg=name)


class _KernelsWithoutCoefficientLearning(CpuBackend):
    """A backend whose specialised kernels do not learn closed-form coefficients (as cuda's)."""

    name = "cuda-like"
    learns_closed_form_constants = False


@dataclass(frozen=True)
class ScaledThresholdLIF(LIF):
    """LIF whose constant ``scale`` weighs v in its threshold row (its description's)."""

    scale: float = 1.0
    learnable = ("tau_mem", "tau_syn", "scale")

    def dynamics(self):
        return replace(super().dynamics(), threshold={"v": self.scale})


@dataclass(frozen=True)
class Undescribed(LIF):
    """LIF's closed form without a description."""

    def dynamics(self):
        return NeuronModel.dynamics(self)


@pytest.mark.parametrize(
    "neuron, learn",
    [
        (LIF(), {"tau_mem": [10.0, 40.0], "tau_syn": [2.0, 8.0]}),
        (
            ALIF(tau_adapt=50.0, adapt_step=0.3),
            {"tau_adapt": [20.0, 80.0], "adapt_step": [0.1, 0.5], "tau_syn": [2.0, 8.0]},
        ),
    ],
    ids=["lif", "alif"],
)
def test_learn_tau_on_a_backend_without_coefficient_learning_runs_the_models_by_description(monkeypatch, neuron, learn):
    """The routing rule (``Backend.learns_closed_form_constants``, the cuda backend's case): a
    network learning its time constants per layer runs its models by their description, with the
    same parameters and gradients as the specialised kernels learning them; without learn_tau it
    keeps the specialised kernels. Bugs caught: the rule ignored (the backend refuses the
    coefficients), applied to every network, or changing a model's identity (name, fields)."""
    data = random_data(np.random.default_rng(5), 3, 10, 80, rate=(80, 120))
    labels = torch.as_tensor(data.labels)
    grads = []
    for routed in (False, True):
        if routed:
            monkeypatch.setattr(network_module, "get_backend", lambda name: _KernelsWithoutCoefficientLearning())
        net = make_net(neuron, LI(), learn_tau=learn, delays=delays("exact"))
        assert (net.plan.described is not None) == routed
        assert [(m.name, m.tau_mem, m.tau_syn) for m in net.neurons] == [(neuron.name, 20.0, 5.0)] * 2
        out = net(data)
        torch.nn.functional.cross_entropy(out.readout, labels).backward()
        grads.append({n: p.grad.clone() for n, p in net.named_parameters()})
    assert make_net(neuron, LI()).plan.described is None
    assert grads[1].keys() == grads[0].keys() >= {f"{key}{k}" for key in learn for k in (0, 1)}
    for name, g in grads[0].items():
        assert g.abs().max() > 0, name
        np.testing.assert_allclose(grads[1][name], g, rtol=1e-7, atol=1e-9 * g.abs().max().item(), err_msg=name)


@pytest.mark.parametrize(
    "neuron, kw, words",
    [
        (LIF(), dict(tau_per_neuron=True), "Fix: trainer.device=cpu, or network.tau_per_neuron=false"),
        (
            ScaledThresholdLIF(),
            dict(learn_tau={"scale": [0.5, 2.0]}),
            "scale moves its threshold row.*Fix: remove learn_tau.scale, or trainer.device=cpu",
        ),
        (Undescribed(), {}, "neuron 'lif' gives none .NeuronModel.dynamics.. Fix: trainer.device=cpu"),
    ],
    ids=["per-neuron", "threshold-row", "no-description"],
)
def test_what_such_a_backend_cannot_learn_is_refused_in_one_line_naming_the_cpu(monkeypatch, neuron, kw, words):
    monkeypatch.setattr(network_module, "get_backend", lambda name: _KernelsWithoutCoefficientLearning())
    with pytest.raises(ValueError, match=words) as err:
        make_net(neuron, LI(), **{"learn_tau": {"tau_mem": [10.0, 40.0]}, **kw})
    assert "\n" not in str(err.value) and "cuda-like backend" in str(err.value)


@dataclass(frozen=True)
class ScaledThresholdRow(Oscillator):
    """An oscillator whose constant ``scale`` weighs y in its threshold row: not learnable by
    description (the row is fixed), unlike its ``level`` (theta)."""

    scale: float = 1.0
    learnable = ("omega", "scale")

    def dynamics(self):
        return replace(super().dynamics(), threshold={"y": self.scale})


@pytest.mark.parametrize(
    "neuron, kw, key",
    [
        (
            ScaledThresholdRow(),
            dict(learn_tau={"scale": [0.5, 2.0]}),
            "learn_tau.scale: neuron 'oscillator'.s scale moves its threshold row",
        ),
        (Described(LIF()), dict(learn_tau={"tau_mem": [10.0, 40.0]}, tau_per_neuron=True), "Fix: tau_per_neuron=false"),
    ],
    ids=["threshold", "per-neuron"],
)
def test_what_a_described_model_cannot_learn_yet_is_refused_in_one_line(neuron, kw, key):
    with pytest.raises(ValueError, match=key) as err:
        make_net(neuron, LI(), **kw)
    assert "\n" not in str(err.value)


BASE = dict(
    states=("v", "i"), matrix=[[-0.05, 0.05], [0.0, -0.2]], input={"i": 1.0}, threshold={"v": 1.0}, membrane="v"
)


@pytest.mark.parametrize(
    "change, key",
    [
        (dict(matrix=[[-0.05, 0.05, 0.0], [0.0, -0.2, 0.0]]), "matrix has shape"),
        (dict(matrix=[[-0.05, 0.05], [0.0]]), "matrix must be a square table of numbers"),
        (dict(input={"w": 1.0}), "input names the state 'w'"),
        (dict(input={}), "input must add"),
        (dict(threshold={"v": 0.0}), "threshold must weigh"),
        (dict(reset={"u": 0.0}), "reset names the state 'u'"),
        (dict(membrane="u"), "membrane='u'"),
        (dict(matrix=[[0.05, 0.0], [0.0, -0.2]]), "growing mode"),
        (dict(matrix=[[-0.1, 0.1], [0.0, -0.1]]), "not diagonalisable"),
        (dict(theta=-1.0), "theta must be a positive"),
        (dict(count_scale=float("nan")), "count_scale"),
    ],
)
def test_descriptions_that_do_not_fit_are_refused_in_one_line(change, key):
    with pytest.raises(ValueError, match=key) as err:
        LinearDynamics(**{**BASE, **change})
    assert "\n" not in str(err.value)


def test_a_description_must_agree_with_the_model_on_spiking():
    @dataclass(frozen=True)
    class Confused(Oscillator):
        spiking = False

    with pytest.raises(ValueError, match="its description has threshold but the model says spiking=False"):
        make_net(LIF(), Confused(), readout=ExpWeightedMeanV())


def test_a_model_without_a_description_cannot_join_a_described_network():
    @dataclass(frozen=True)
    class CoefficientsOnly(NeuronModel):
        name = "coefficients_only"

        def coefficients(self, dt):
            return LIF().coefficients(dt)

    with pytest.raises(ValueError, match="neuron 'coefficients_only' does not describe its dynamics") as err:
        make_net([Oscillator(), CoefficientsOnly()], LI())
    assert "\n" not in str(err.value)
