"""Exported graphs simulated by the released importers agree with the engine within the bound
that the integration difference sets.

The bound. The engine integrates each neuron exactly; Norse 1.1.0 and snnTorch 1.0.0 step the
same ODE with forward Euler (and deliver a spike within its step, not at its sub-step time).
For one input spike the two postsynaptic potentials differ by at most ``eps`` times the exact
PSP's peak (:func:`euler_psp_error`: 3.6 % at tau_mem 20 / tau_syn 5 ms, dt 0.5 ms). A voltage
error of at most ``eps`` relative is no larger than scaling every voltage by ``1 +- eps``; the
engine's own spike counts and predictions under that scaling (applied as weights times
``1 +- eps``) therefore set how far an Euler simulation may stray: the importer must agree with
the engine at least as well as the engine agrees with its ``1 +- eps`` perturbation (the worse
of the two signs).
"""

from __future__ import annotations

import math

import nir
import numpy as np
import pytest
import torch

from conftest import make_net
from eventkit.plugin import SumV
from eventkit_nir import network_from_nir, to_nir
from eventkit_nir.conventions import Convention
from eventkit_nir.importers import predictions_from_trace, run_norse, run_snntorch


def euler_psp_error(tau_mem: float, tau_syn: float, dt: float, n: int = 4000) -> float:
    """max_t |PSP_Euler - PSP_exact| / max PSP_exact for one input spike (grid times 1..n):
    exact ``c (beta^k - alpha^k)``; Euler ``I_k = (1 - dt/tau_syn)^k``,
    ``v_k = (1 - dt/tau_mem) v_(k-1) + dt/tau_mem I_k`` (the importers' update order)."""
    a, b = math.exp(-dt / tau_mem), math.exp(-dt / tau_syn)
    k = np.arange(1, n + 1)
    exact = tau_syn / (tau_syn - tau_mem) * (b**k - a**k)
    current = (1 - dt / tau_syn) ** np.arange(n)
    v, acc = np.zeros(n), 0.0
    for i in range(n):
        acc = (1 - dt / tau_mem) * acc + dt / tau_mem * current[i]
        v[i] = acc
    return float(np.abs(v - exact).max() / exact.max())


def engine_tolerance(net, data, eps: float) -> tuple[float, float]:
    """(count agreement, prediction agreement) of the engine with itself when every voltage is
    scaled by 1 + eps and by 1 - eps (the worse of the two)."""
    with torch.no_grad():
        base = net(data)
        counts, preds = [], []
        for s in (1 + eps, 1 - eps):
            other = network_from_nir(to_nir(net), readout=net.readout)
            for conn in other.topology.connections:
                if conn.kind != "rec":  # recurrent input is scaled through the scaled spikes' effect
                    getattr(other, conn.name).mul_(s)
            out = other(data)
            counts.append(float(np.mean(out.counts.numpy() == base.counts.numpy())))
            preds.append(float(np.mean(net.predict(out.readout).numpy() == net.predict(base.readout).numpy())))
    return min(counts), min(preds)


def test_euler_psp_error_is_the_known_first_order_gap():
    # catches a wrong bound: the Euler error must shrink ~linearly with dt
    e1, e2 = euler_psp_error(20, 5, 0.5), euler_psp_error(20, 5, 0.25)
    assert 0.03 < e1 < 0.045 and 1.7 < e1 / e2 < 2.3


def _agreement(net, data, run) -> tuple[float, float]:
    with torch.no_grad():
        out = net(data)
    counts = float(np.mean(run.counts == out.counts.numpy()))
    preds = float(np.mean(predictions_from_trace(net, run.trace) == net.predict(out.readout).numpy()))
    return counts, preds


@pytest.mark.parametrize("convention", ["seconds", "snntorch"])
def test_norse_agrees_with_the_engine_within_the_euler_bound(yinyang_batch, convention):
    # catches: w_in/r/threshold conventions off (a factor dt or tau_mem/dt silences or floods the
    # hidden layer), time constants in ms instead of the importer's seconds, transposed weights
    pytest.importorskip("norse")
    net = make_net()
    conv = Convention.make(convention, net.dt)
    run = run_norse(to_nir(net, convention=convention, readout_as="cubalif"), yinyang_batch, conv.dt)
    counts, preds = _agreement(net, yinyang_batch, run)
    tol_counts, tol_preds = engine_tolerance(net, yinyang_batch, euler_psp_error(20.0, 5.0, net.dt))
    assert run.counts.sum() > 0.5 * net(yinyang_batch).counts.sum().item()
    assert counts >= tol_counts, (counts, tol_counts)
    assert preds >= tol_preds, (preds, tol_preds)


def test_snntorch_agrees_with_the_engine_within_the_euler_bound(yinyang_batch):
    # catches: the snntorch convention not meeting snnTorch 1.0.0's asserts (r = tau_mem/1e-4,
    # v_leak = 0) or its fixed dt of 1e-4 s, and the voltage scale not carried by the threshold
    pytest.importorskip("snntorch")
    net = make_net()
    run = run_snntorch(to_nir(net, convention="snntorch", readout_as="cubalif"), yinyang_batch)
    counts, preds = _agreement(net, yinyang_batch, run)
    tol_counts, tol_preds = engine_tolerance(net, yinyang_batch, euler_psp_error(20.0, 5.0, net.dt))
    assert counts >= tol_counts, (counts, tol_counts)
    assert preds >= tol_preds, (preds, tol_preds)


def test_released_importer_limits_are_as_documented(yinyang_batch):
    # the README's compatibility table: snnTorch 1.0.0 cannot load a recurrent graph, a CubaLI
    # readout needs readout_as=cubalif for both importers, and neither reads Delay nodes. If an importer release lifts
    # a limit this test fails and the table must be updated.
    pytest.importorskip("snntorch")
    pytest.importorskip("norse")
    import norse.torch

    net = make_net(recurrent=(True,))
    with torch.no_grad():
        net.rec0.normal_(0.0, 0.3, generator=torch.Generator().manual_seed(1))
        engine = net.predict(net(yinyang_batch).readout).numpy()
    rec = to_nir(net, convention="snntorch", readout_as="cubalif")
    with pytest.raises(ValueError, match="recurrent"):
        run_snntorch(rec, yinyang_batch)
    run = run_snntorch(rec, yinyang_batch, allow_recurrent=True)  # loads, but computes wrongly
    assert np.mean(predictions_from_trace(net, run.trace) == engine) < 0.5
    li = to_nir(make_net(), readout_as="cubali")
    model = norse.torch.from_nir(li, dt=5e-4)
    _, state = model(torch.zeros(2, 5), None)
    assert "readout" not in state.state  # Norse 1.1.0 drops the CubaLI node
    # neither importer reads Delay nodes (so no importer needs one delay layout over another)
    delayed = make_net(delays={"ff": {"max": 2.0, "init": [0.0, 2.0], "mode": "round"}})
    with pytest.raises(KeyError):  # Norse 1.1.0 has no module for the Delay node
        norse.torch.from_nir(to_nir(delayed, readout_as="cubalif"), dt=5e-4)
    with pytest.raises(ValueError, match="Delay"):
        run_snntorch(to_nir(delayed, convention="snntorch", readout_as="cubalif"), yinyang_batch)


def test_snntorch_made_graph_imports_as_snntorch_runs_it(yinyang_batch):
    # the reverse direction: a graph written by snnTorch's exporter (its 0.1 ms step stated by
    # w_in = tau_syn/dt and r = tau_mem/dt, per-neuron vectors), imported here at its step, agrees
    # with snnTorch's own simulation of it within the Euler bound. catches: the reader misreading
    # snnTorch's r / w_in / threshold scale (a factor tau_mem/dt silences or floods the layer)
    snn = pytest.importorskip("snntorch")
    from snntorch.export_nir import export_to_nir

    from eventkit.plugin import SpikeData
    from eventkit_nir.conventions import SNNTORCH_DT

    dt, tau_mem, tau_syn = SNNTORCH_DT * 1e3, 20.0, 5.0  # ms
    torch.manual_seed(0)

    def synaptic(n, threshold):
        full = lambda x: torch.full((n,), float(x))  # noqa: E731
        return snn.Synaptic(
            alpha=full(1 - dt / tau_syn), beta=full(1 - dt / tau_mem), threshold=full(threshold), init_hidden=True
        )

    fc1, fc2 = torch.nn.Linear(5, 60, bias=False), torch.nn.Linear(60, 3, bias=False)
    with torch.no_grad():
        fc1.weight.normal_(3.0, 1.0)
        fc2.weight.normal_(0.0, 0.3)
    # snnTorch's v is eventkit's V * tau_mem/dt: threshold 1 in V is tau_mem/dt in v
    model = torch.nn.Sequential(fc1, synaptic(60, tau_mem / dt), fc2, synaptic(3, 1e30))
    g = export_to_nir(model, torch.randn(1, 5), ignore_dims=[0])
    g = nir.NIRGraph(  # the names run_snntorch reads its counts and trace from
        nodes={{"1": "hidden0", "3": "readout"}.get(k, k): v for k, v in g.nodes.items()},
        edges=[tuple({"1": "hidden0", "3": "readout"}.get(x, x) for x in e) for e in g.edges],
    )
    # the Yin-Yang batch on snnTorch's 0.1 ms grid
    b = yinyang_batch
    data = SpikeData(b.offsets, b.steps * 5, b.channels, b.labels, b.n_channels, b.n_steps * 5, dt, b.n_classes)
    net = network_from_nir(g, readout=SumV(), n_steps=data.n_steps)  # dt: the file's own
    assert net.dt == pytest.approx(dt) and net.neurons[0].threshold == pytest.approx(1.0, rel=1e-5)
    run = run_snntorch(g, data)
    counts, preds = _agreement(net, data, run)
    tol_counts, tol_preds = engine_tolerance(net, data, euler_psp_error(tau_mem, tau_syn, dt, n=20000))
    assert run.counts.sum() > 0.5 * net(data).counts.sum().item() > 0
    assert counts >= tol_counts, (counts, tol_counts)
    assert preds >= tol_preds, (preds, tol_preds)


def test_norse_made_graph_repaired_imports_as_norse_runs_it(yinyang_batch):
    # a graph written by Norse 1.1.0's to_nir, repaired by fix_norse and imported here, agrees
    # with Norse's own LIFCell simulation of the model within the Euler bound. catches: the repair
    # leaving tau a factor dt off or w_in at 1 (each spike 0.1 times as strong: the layer falls silent)
    nt = pytest.importorskip("norse.torch")
    from eventkit_nir import fix_norse
    from eventkit_nir.importers import ImporterRun, dense_input

    dt_s = yinyang_batch.dt * 1e-3
    torch.manual_seed(0)
    fc1, fc2 = torch.nn.Linear(5, 60, bias=False), torch.nn.Linear(60, 3, bias=False)
    with torch.no_grad():
        fc1.weight.normal_(3.0, 1.0)
        fc2.weight.normal_(0.0, 0.3)
    hidden = nt.LIFCell(dt=dt_s)  # tau_mem 10 ms, tau_syn 5 ms, threshold 1
    readout = nt.LIFCell(nt.LIFParameters(v_th=torch.tensor(1e30)), dt=dt_s)  # never fires
    graph = nt.to_nir(nt.SequentialState(fc1, hidden, fc2, readout), torch.randn(1, 5), dt=dt_s)
    net = network_from_nir(fix_norse(graph, dt=dt_s), readout=SumV(), n_steps=yinyang_batch.n_steps)
    assert net.dt == pytest.approx(yinyang_batch.dt) and not net.output.spiking
    x = dense_input(yinyang_batch)
    counts, trace, s1, s2 = torch.zeros(len(yinyang_batch), 60), [], None, None
    with torch.no_grad():
        for t in range(x.shape[0]):
            z, s1 = hidden(fc1(x[t]), s1)
            counts += z
            _, s2 = readout(fc2(z), s2)
            trace.append(s2.v.clone())
    run = ImporterRun(counts.numpy(), torch.stack(trace, 1).numpy())
    got_counts, got_preds = _agreement(net, yinyang_batch, run)
    tol_counts, tol_preds = engine_tolerance(net, yinyang_batch, euler_psp_error(10.0, 5.0, yinyang_batch.dt))
    assert run.counts.sum() > 0.5 * net(yinyang_batch).counts.sum().item() > 0
    assert got_counts >= tol_counts, (got_counts, tol_counts)
    assert got_preds >= tol_preds, (got_preds, tol_preds)
