"""Models given only by their description (``NeuronModel.dynamics``) run on the description-driven
kernels: the same simulation and gradients as the specialised kernels for the LIF family, exact
gradients (finite differences) for a model those kernels cannot run, and one-line refusals of
descriptions that do not fit."""

from dataclasses import dataclass

import numpy as np
import pytest
import torch

from engine_cases import assert_cross_entropy_gradients_match
from eventkit.engine import ALIF, LI, LIF, EventpropNet, ExpWeightedMeanV, FirstSpike, NeuronModel
from eventkit.engine.dynamics import LinearDynamics
from eventkit.plugin.testing import random_data


@dataclass(frozen=True)
class DescribedOnly(NeuronModel):
    """``inner`` without its closed-form coefficients: the network runs on the description-driven
    kernels."""

    inner: NeuronModel = LIF()
    name = "described"

    @property
    def spiking(self):
        return self.inner.spiking

    def dynamics(self):
        return self.inner.dynamics()


@dataclass(frozen=True)
class Oscillator(NeuronModel):
    """A damped oscillator (x, y) driven by a synaptic current, firing on y: complex eigenvalues,
    three states, a threshold on a state no input reaches directly."""

    omega: float = 0.25  # rad/ms
    tau: float = 15.0
    tau_syn: float = 4.0
    spiking = True
    name = "oscillator"

    def dynamics(self):
        return LinearDynamics(
            states=("x", "y", "i"),
            matrix=[
                [-1 / self.tau, -self.omega, 1 / self.tau],
                [self.omega, -1 / self.tau, 0.0],
                [0, 0, -1 / self.tau_syn],
            ],
            input={"i": 1.0},
            threshold={"y": 1.0},
            theta=0.5,
            reset={"x": 0.0, "y": 0.0},
            membrane="y",
            count_scale=self.tau,
            model=self.name,
        )


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


@pytest.mark.parametrize(
    "neuron, output, readout",
    [
        (LIF(), LI(), ExpWeightedMeanV()),
        (ALIF(tau_adapt=50.0, adapt_step=0.3), LI(), ExpWeightedMeanV()),
        (LIF(), LIF(tau_mem=15.0, threshold=0.3), FirstSpike()),
    ],
    ids=["lif", "alif", "lif-output-first-spike"],
)
def test_described_kernels_reproduce_the_specialised_kernels(neuron, output, readout):
    """The LIF family described as a linear system: the description-driven kernels give the
    specialised kernels' spikes, trace and gradients to rounding. Fails on any error in the generic
    forward map (propagator, crossing, reset, delivery) or its adjoint (transposed propagator,
    spike jumps, first-spike and regulariser terms, weight gradients)."""
    data = random_data(np.random.default_rng(1), 3, 10, 80, rate=(80, 120))
    fast, g_fast, s_fast = run(make_net(neuron, output, readout), data)
    net = make_net(DescribedOnly(neuron), DescribedOnly(output), readout)
    assert net.plan.described is not None and make_net(neuron, output, readout).plan.described is None
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


def test_float32_and_thread_count_do_not_change_the_described_path():
    """float32 states follow float64 to rounding; the gradients do not depend on the thread count
    (fixed sample groups)."""
    import numba

    data = random_data(np.random.default_rng(3), 4, 10, 80, rate=(30, 50))
    _, g64, _ = run(make_net(Oscillator(), LI(), dtype=torch.float64), data)
    _, g32, _ = run(make_net(Oscillator(), LI(), dtype=torch.float32), data)
    for name in g64:
        rel = (g32[name].double() - g64[name]).norm() / g64[name].norm()
        assert rel < 1e-3, name
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        _, g1, _ = run(make_net(Oscillator(), LI(), dtype=torch.float32), data)
    finally:
        numba.set_num_threads(threads)
    for name in g32:
        assert torch.equal(g1[name], g32[name]), name


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


def test_delays_and_cuda_are_refused_for_described_models():
    with pytest.raises(ValueError, match="network.delays: neuron 'oscillator' runs on the description-driven"):
        make_net(Oscillator(), LI(), delays={"ff": {"max": 5.0}})

    @dataclass(frozen=True)
    class Confused(Oscillator):
        spiking = False

    with pytest.raises(ValueError, match="its description has threshold but the model says spiking=False"):
        make_net(LIF(), Confused(), readout=ExpWeightedMeanV())


def test_the_cuda_backend_refuses_described_models_in_one_line():
    """Checked before anything reaches a device: the CUDA kernels know the LIF family only."""
    from eventkit.engine.backends.cpu import CpuBackend
    from eventkit.engine.backends.cuda import CudaBackend

    backend = CudaBackend.__new__(CudaBackend)  # no device here; plan() refuses before using one
    backend._host = CpuBackend()
    topology = make_net(Oscillator(), LI()).topology
    with pytest.raises(ValueError, match="neuron 'oscillator': models given by their description run on the CPU"):
        backend.plan(topology, 1.0, 80)


def test_a_model_without_a_description_cannot_join_a_described_network():
    @dataclass(frozen=True)
    class CoefficientsOnly(NeuronModel):
        name = "coefficients_only"

        def coefficients(self, dt):
            return LIF().coefficients(dt)

    with pytest.raises(ValueError, match="neuron 'coefficients_only' does not describe its dynamics") as err:
        make_net([Oscillator(), CoefficientsOnly()], LI())
    assert "\n" not in str(err.value)
