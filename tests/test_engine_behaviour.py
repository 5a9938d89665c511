"""Engine behaviour: learning, batch and thread invariance, no leakage between batches, bad input,
spike storage growth, on-disk kernel cache."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from eventkit.data import SpikeData, from_samples
from eventkit.engine import LI, LIF, EventpropNet, MaxV, Simulation, spike_count_regularizer
from eventkit.plugin.testing import accuracy, random_data, run_with_threads, train_until, two_pattern_task


def test_small_network_learns_two_patterns_within_15_epochs():
    """From chance to >= 95 % within 15 epochs (a step count, not a wall time: speed is the
    benchmarks' job). Fails when the gradient's sign or scale is wrong enough to stall learning."""
    rng = np.random.default_rng(0)
    train, test = two_pattern_task(rng, 256), two_pattern_task(rng, 200)
    torch.manual_seed(0)
    net = EventpropNet(
        20,
        2,
        hidden=32,
        recurrent=False,
        readout=MaxV(),
        n_steps=60,
        init=dict(ff_mean=0.4, ff_std=0.2, out_std=0.3),
        generator=torch.Generator().manual_seed(0),
    )
    chance = accuracy(net, test)
    assert chance < 0.75
    final = train_until(net, train, test, max_epochs=15)
    assert final >= 0.95, (chance, final)


def _grads(net, data, labels=None, reg=0.0):
    net.zero_grad()
    out = net(data)
    labels = torch.as_tensor(data.labels if labels is None else labels)
    loss = F.cross_entropy(out.readout, labels, reduction="sum")
    if reg:
        loss = loss + spike_count_regularizer(out.counts, reg, 1.0)
    loss.backward()
    return {n: p.grad.clone() for n, p in net.named_parameters()}, out


def _net(dtype=torch.float64, **kw):
    return EventpropNet(
        10,
        3,
        hidden=[16, 12],
        recurrent=True,
        n_steps=70,
        dtype=dtype,
        init=dict(ff_mean=0.5, ff_std=0.2, rec_std=0.1, out_std=0.3),
        generator=torch.Generator().manual_seed(1),
        **kw,
    )


def test_batch_gradient_is_sum_of_sample_gradients():
    rng = np.random.default_rng(1)
    data = random_data(rng, 7, 10, 70, rate=(30, 80))
    net = _net()
    batch, _ = _grads(net, data)
    total = {n: torch.zeros_like(g) for n, g in batch.items()}
    for k in range(len(data)):
        g, _ = _grads(net, data.subset([k]))
        for n in total:
            total[n] += g[n]
    for n in total:
        torch.testing.assert_close(batch[n], total[n], rtol=1e-10, atol=1e-12)


def test_results_do_not_depend_on_thread_count():
    """Readouts and gradients (regulariser included) of a batch of 12 are bit-identical on 1, 3
    and 4 numba threads (12, 4 and 3 samples per thread), in an interpreter where numba has 4
    threads whatever the machine's core count, each count checked to be in use."""
    script = f"""
import sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
import numba, numpy as np, torch
from test_engine_behaviour import _grads, _net
from eventkit.plugin.testing import random_data, threads_in_use
data = random_data(np.random.default_rng(2), 12, 10, 70, rate=(30, 80))
net = _net(dtype=torch.float32)
runs = {{}}
for n in (1, 3, 4):
    numba.set_num_threads(n)
    assert threads_in_use() == n, (n, threads_in_use())
    runs[n] = _grads(net, data, reg=1e-3)
g1, o1 = runs[1]
for n in (3, 4):
    g, o = runs[n]
    assert torch.equal(o.readout, o1.readout) and torch.equal(o.counts, o1.counts), n
    for name in g1:
        assert torch.equal(g[name], g1[name]), (n, name)
print("equal on", sorted(runs), "threads")
"""
    assert "equal on [1, 3, 4] threads" in run_with_threads(script)


def test_nothing_leaks_from_one_batch_into_the_next():
    rng = np.random.default_rng(3)
    a = random_data(rng, 5, 10, 70, rate=(60, 90))
    b = random_data(rng, 3, 10, 70, rate=(20, 40))
    fresh = _net()
    g_fresh, o_fresh = _grads(fresh, b)
    used = _net()
    _grads(used, a)  # a busy batch first, forward and backward
    used(a)  # and a forward without backward
    g_used, o_used = _grads(used, b)
    assert torch.equal(o_fresh.readout, o_used.readout)
    assert torch.equal(o_fresh.counts, o_used.counts)
    for n in g_fresh:
        assert torch.equal(g_fresh[n], g_used[n])


def test_a_lone_last_sample_gets_its_backward_pass():
    rng = np.random.default_rng(4)
    data = random_data(rng, 1, 10, 70, rate=(60, 90))
    g, _ = _grads(_net(), data)
    assert all(torch.isfinite(v).all() for v in g.values())
    assert g["ff0"].abs().sum() > 0


def test_spike_storage_grows_and_fails_clearly():
    rng = np.random.default_rng(5)
    data = random_data(rng, 2, 10, 70, rate=(80, 100))
    net = _net()
    reference = net(data).counts.sum().item()
    net.plan.capacity = 4  # far too small: must grow, never drop a spike
    assert net(data).counts.sum().item() == reference
    tight = _net(max_spikes_per_sample=8)
    with pytest.raises(RuntimeError, match="max_spikes_per_sample"):
        tight(data)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(n_in=0), "n_in"),
        (dict(hidden=[16, -1]), r"hidden\[1\]"),
        (dict(recurrent=[True, False]), "recurrent"),
        (dict(dt=-1.0), "dt"),
        (dict(n_steps=0), "n_steps"),
        (dict(dt=6.0), "dt=6.0 ms is larger than tau_syn"),
        (dict(init=dict(ff_sd=1.0)), "init"),
        (dict(dtype=torch.float16), "dtype"),
    ],
)
def test_bad_network_arguments(kwargs, match):
    args = dict(n_in=10, n_out=3, hidden=16)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        EventpropNet(**args)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: LIF(tau_mem=-5.0), "tau_mem"),
        (lambda: LIF(tau_syn=0.0), "tau_syn"),
        (lambda: LIF(refractory=2.0), "refractory"),
        (lambda: LI(tau_mem=float("nan")), "tau_mem"),
    ],
)
def test_bad_neuron_parameters(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_bad_data():
    net = EventpropNet(10, 3, hidden=8, n_steps=50)
    ok = from_samples([(np.array([1, 2]), np.array([0, 1]))], [0], n_channels=10, n_steps=50, dt=1.0, n_classes=3)
    with pytest.raises(ValueError, match="n_channels"):
        net(from_samples([(np.array([1]), np.array([0]))], [0], n_channels=9, n_steps=50, dt=1.0, n_classes=3))
    with pytest.raises(ValueError, match="dt"):
        net(from_samples([(np.array([1]), np.array([0]))], [0], n_channels=10, n_steps=50, dt=0.5, n_classes=3))
    with pytest.raises(ValueError, match=r"n_steps=50"):
        net(from_samples([(np.array([50]), np.array([0]))], [0], n_channels=10, n_steps=60, dt=1.0, n_classes=3))
    bad_order = SpikeData(ok.offsets, ok.steps[::-1].copy(), ok.channels, ok.labels, 10, 50, 1.0, 3)
    with pytest.raises(ValueError, match="sorted"):
        net(bad_order)
    bad_channel = SpikeData(ok.offsets, ok.steps, np.array([0, 12], np.int32), ok.labels, 10, 50, 1.0, 3)
    with pytest.raises(ValueError, match="channels"):
        net(bad_channel)
    with pytest.raises(ValueError, match="SpikeData"):
        net(np.zeros((50, 10)))
    with pytest.raises(ValueError, match="empty"):
        net(ok.subset([]))


@pytest.mark.slow  # compiles or installs afresh in a subprocess (tens of seconds)
def test_second_process_loads_compiled_kernels_from_disk(tmp_path):
    script = (
        "import numpy as np, torch\n"
        "from eventkit.engine import EventpropNet\n"
        "from eventkit.engine.backends import _cpu_kernels as _kernels\n"
        "from eventkit.data import from_samples\n"
        "d = from_samples([(np.array([1, 2]), np.array([0, 1]))], [0], n_channels=4, n_steps=20, dt=1.0, n_classes=2)\n"
        "net = EventpropNet(4, 2, hidden=3, n_steps=20)\n"
        "net(d).readout.sum().backward()\n"
        "s = [_kernels.forward.stats, _kernels.backward.stats]\n"
        "print(sum(x.cache_hits.__len__() for x in s), sum(len(x.cache_misses) for x in s))\n"
    )
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    runs = [
        subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
        ).stdout.split()
        for _ in range(2)
    ]
    assert runs[0][1] != "0", runs  # first process compiles (misses)
    assert runs[1] == ["2", "0"], runs  # second: both kernels from the disk cache, no compile


def test_fake_quantization_is_straight_through():
    from eventkit.engine import FakeQuant

    rng = np.random.default_rng(6)
    data = random_data(rng, 4, 10, 70, rate=(40, 80))
    step = 0.125

    def quant(weights):
        return FakeQuant({n: np.round(w / step) * step for n, w in weights.items()}, {0: 0.875})

    net = _net()
    net.simulation = Simulation(fake_quantization=quant)
    g_q, o_q = _grads(net, data)
    # the same network with the rounded weights and threshold written in, no fake quantization
    from eventkit.engine import LIF

    plain = _net(neuron=[LIF(threshold=0.875), LIF()])
    with torch.no_grad():
        for n, p in plain.named_parameters():
            p.copy_(torch.round(getattr(net, n) / step) * step)
    g_p, o_p = _grads(plain, data)
    assert torch.equal(o_q.readout, o_p.readout)
    for n in g_q:
        assert torch.equal(g_q[n], g_p[n])  # gradients reach the float weights unchanged
    assert not torch.equal(net.ff0, plain.ff0)  # the float weights themselves stay unrounded
    with pytest.raises(ValueError, match="callable"):
        net.simulation = Simulation(fake_quantization=3)
    with pytest.raises(ValueError, match="Simulation"):
        net.simulation = quant


def test_readout_in_the_loop_is_straight_through():
    rng = np.random.default_rng(7)
    data = random_data(rng, 5, 10, 70, rate=(40, 80))
    labels = torch.as_tensor(data.labels)
    net = _net()
    with torch.no_grad():
        own = net(data).readout
    other = (own * 1.7 + 0.05).numpy()  # what "another system" reads out for this batch
    # reference: d loss / d readout taken at the other system's values, sent through the network
    net.zero_grad()
    readout = net(data).readout
    r = torch.as_tensor(other).requires_grad_(True)
    (g_r,) = torch.autograd.grad(F.cross_entropy(r, labels, reduction="sum"), r)
    readout.backward(g_r)
    expected = {n: p.grad.clone() for n, p in net.named_parameters()}

    calls = []
    net.simulation = Simulation(readout_in_the_loop=lambda d: calls.append(len(d)) or other)
    got, out = _grads(net, data)
    assert calls == [len(data)]
    np.testing.assert_allclose(out.readout.detach().numpy(), other, rtol=1e-12)  # r + (hw - r)
    for n in expected:
        torch.testing.assert_close(got[n], expected[n], rtol=1e-12, atol=0)
    with torch.no_grad():  # evaluation sees the other system's readout too
        np.testing.assert_allclose(net(data).readout.numpy(), other, rtol=1e-12)
    assert calls == [len(data)] * 2

    with net.simulating(readout_in_the_loop=None):  # the network's own readout, for a while
        torch.testing.assert_close(_grads(net, data)[1].readout, own, rtol=0, atol=0)
    np.testing.assert_allclose(_grads(net, data)[1].readout.detach().numpy(), other, rtol=1e-12)
    net.simulation = Simulation(readout_in_the_loop=lambda d: other[:, :2])
    with pytest.raises(ValueError, match="shape"):
        _grads(net, data)
    net.simulation = Simulation(readout_in_the_loop=lambda d: other * np.nan)
    with pytest.raises(ValueError, match="NaN"):
        _grads(net, data)
    with pytest.raises(ValueError, match="callable"):
        net.simulation = Simulation(readout_in_the_loop="chip")
    net.simulation = Simulation()
    torch.testing.assert_close(_grads(net, data)[1].readout, own, rtol=0, atol=0)


def test_binary_input_counts_a_repeated_input_spike_once():
    rng = np.random.default_rng(3)
    data = random_data(rng, 6, 8, 50, rate=(60, 90))
    binary = data.binary()
    assert binary.n_spikes < data.n_spikes
    net = EventpropNet(
        8,
        3,
        hidden=10,
        neuron=LIF(),
        init=dict(ff_mean=0.8, ff_std=0.3),
        n_steps=50,
        dtype=torch.float64,
        generator=torch.Generator().manual_seed(1),
    )
    assert not net.simulation.binary_input
    counting = net(data).trace.detach()
    net.simulation = Simulation(binary_input=True)
    out = net(data)
    torch.testing.assert_close(out.trace.detach(), net(binary).trace.detach(), rtol=0, atol=0)
    assert not torch.equal(out.trace.detach(), counting)
    loss = out.readout.square().sum()
    loss.backward()
    g = net.ff0.grad.clone()
    net.zero_grad()
    net(binary).readout.square().sum().backward()
    torch.testing.assert_close(g, net.ff0.grad, rtol=0, atol=0)  # the gradient is that of the binary input
    with pytest.raises(ValueError, match="True or False"):
        Simulation(binary_input=1)
