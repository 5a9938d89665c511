"""export -> nir.write -> nir.read -> import gives the same network and the same forward pass;
bad files and graphs give one-line errors."""

from __future__ import annotations

import nir
import numpy as np
import pytest
import torch

from conftest import make_net
from eventkit.engine import LIF, SumV
from eventkit_nir import network_from_nir, read_nir, to_nir, write_nir

DELAYS = {
    "none": None,
    "ff_round": {"ff": {"max": 5.0, "init": [0.0, 5.0], "mode": "round"}},
    "out_exact": {"out": {"max": 3.0, "init": [0.0, 3.0], "mode": "exact", "learn": False}},
}


def _effective_delay(net, conn) -> np.ndarray:
    d = getattr(net, conn.delay_name).detach().double().numpy()
    return np.rint(d / net.dt) * net.dt if conn.delay.mode == "round" else d


@pytest.mark.parametrize("convention", ["seconds", "snntorch"])
@pytest.mark.parametrize("delays", list(DELAYS))
def test_roundtrip_gives_the_identical_network(tmp_path, yinyang_batch, convention, delays):
    # catches: transposed or rescaled weights, lost recurrence, time constants in the wrong unit,
    # thresholds not undoing the snntorch voltage scale, delays lost, shifted or regrouped wrongly
    net = make_net(recurrent=(True, False), hidden=(40, 20), delays=DELAYS[delays])
    path = write_nir(net, tmp_path / "model.nir", convention=convention)
    back = network_from_nir(nir.read(str(path)), readout=SumV())
    assert [n for n, _ in back.named_parameters()] == [n for n, _ in net.named_parameters()]
    for conn in net.topology.connections:
        assert torch.equal(getattr(back, conn.name), getattr(net, conn.name)), conn.name
        if conn.delay is not None:
            got = back.topology.connection(conn.name).delay
            assert (got.mode, got.max, got.learn) == (conn.delay.mode, conn.delay.max, conn.delay.learn)
            np.testing.assert_array_equal(_effective_delay(back, conn), _effective_delay(net, conn))
    assert back.neurons == net.neurons and back.output == net.output
    assert back.recurrent == net.recurrent and back.dt == net.dt and back.n_steps == net.n_steps
    a, b = net(yinyang_batch), back(yinyang_batch)
    assert a.counts.sum() > 0
    assert torch.equal(a.readout, b.readout) and torch.equal(a.counts, b.counts)


def test_graph_shape_and_recurrence_cycle():
    # catches: recurrence written as anything but the hidden -> rec -> hidden cycle, a readout
    # of the wrong node type, delays not as Delay -> Linear branches
    net = make_net(recurrent=(True,), delays={"ff": {"max": 2.0, "init": [0.0, 2.0], "mode": "round"}})
    g = to_nir(net)
    assert ("hidden0", "rec0") in g.edges and ("rec0", "hidden0") in g.edges
    assert isinstance(g.nodes["readout"], nir.CubaLI) and ("readout", "output") in g.edges
    assert isinstance(g.nodes["hidden0"], nir.CubaLIF)
    branches = [n for n in g.nodes if n.startswith("ff0_delay")]
    assert 1 < len(branches) <= 5  # whole steps 0..4 of 0.5 ms
    for b in branches:
        assert isinstance(g.nodes[b], nir.Delay) and (b, b.replace("delay", "w")) in g.edges
    # the spike of weight w adds dt/tau_syn * w_in * w = w under the importers' Euler step
    node = g.nodes["hidden0"]
    np.testing.assert_allclose(0.5e-3 / node.tau_syn * node.w_in, 1.0)
    np.testing.assert_allclose(node.tau_mem, 20e-3)


def test_cubalif_readout_reads_back_as_the_leaky_integrator(tmp_path, yinyang_batch):
    # catches: the never-firing CubaLIF readout imported as a spiking layer (or refused)
    net = make_net()
    path = write_nir(net, tmp_path / "m.nir", readout_as="cubalif")
    g = nir.read(str(path))
    assert isinstance(g.nodes["readout"], nir.CubaLIF)
    back = network_from_nir(g, readout=SumV())
    assert not back.output.spiking
    assert torch.equal(back(yinyang_batch).readout, net(yinyang_batch).readout)


def test_spiking_output_roundtrips(yinyang_batch):
    # catches: a LIF output written without its threshold or read back as non-spiking
    net = make_net(output=LIF(tau_mem=20.0, tau_syn=5.0, threshold=0.7))
    back = network_from_nir(to_nir(net), readout=SumV())
    assert back.output == net.output
    assert torch.equal(back(yinyang_batch).trace, net(yinyang_batch).trace)


def test_per_neuron_gains_are_folded_into_the_weights(yinyang_batch):
    # a graph from elsewhere: neuron 3 has twice the threshold and twice the input gain w_in,
    # neuron 5 twice r: same spikes as the eventkit network. catches: w_in, r or per-neuron
    # thresholds ignored, or applied to the wrong axis of the weights
    net = make_net()
    g = to_nir(net)
    h = g.nodes["hidden0"]
    h.v_threshold[3] *= 2
    h.w_in[3] *= 2
    h.r[5] *= 2
    h.v_threshold[5] *= 2
    back = network_from_nir(g, readout=SumV())
    np.testing.assert_allclose(back.ff0.detach().numpy(), net.ff0.detach().numpy(), rtol=1e-6)
    assert torch.equal(back(yinyang_batch).counts, net(yinyang_batch).counts)


def _one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text.strip()
    return text


def test_corrupt_file_is_one_line(tmp_path):
    bad = tmp_path / "bad.nir"
    bad.write_bytes(b"not an hdf5 file")
    with pytest.raises(ValueError) as exc:
        read_nir(bad)
    assert "not a readable NIR file" in _one_line(exc)
    with pytest.raises(ValueError) as exc:
        network_from_nir(tmp_path / "missing.nir")
    assert "no such file" in _one_line(exc)


def test_unsupported_node_is_named():
    g = to_nir(make_net())
    g.nodes["readout"] = nir.LI(tau=np.full(3, 0.02), r=np.ones(3), v_leak=np.zeros(3))
    with pytest.raises(ValueError) as exc:
        network_from_nir(g)
    text = _one_line(exc)
    assert "'readout'" in text and "LI" in text and "supported:" in text


def test_mismatched_shapes_are_one_line(tmp_path):
    net = make_net()
    g = to_nir(net)
    nodes = dict(g.nodes)
    nodes["out"] = nir.Linear(np.ones((3, 7)))  # 7 presynaptic neurons, the layer has 60
    g = nir.NIRGraph(nodes=nodes, edges=g.edges, metadata=g.metadata, type_check=False)
    with pytest.raises(ValueError) as exc:
        network_from_nir(g)
    assert "weight shape (3, 7)" in _one_line(exc)


def test_unrelated_population_wiring_is_refused():
    # a skip connection input -> readout: eventkit layers receive from one earlier layer
    g = to_nir(make_net())
    g.nodes["skip"] = nir.Linear(np.ones((3, 5)))
    g.edges += [("input", "skip"), ("skip", "readout")]
    with pytest.raises(ValueError) as exc:
        network_from_nir(g)
    assert "exactly one earlier layer" in _one_line(exc)


def test_export_refuses_what_nir_cannot_hold():
    class Odd(LIF):
        name = "odd"

    with pytest.raises(ValueError, match="Fix: neuron=lif"):
        to_nir(make_net(neuron=Odd()))
    net = make_net(delays={"ff": {"max": 3.0, "init": [0.0, 3.0]}})  # 300 distinct exact delays
    with pytest.raises(ValueError, match="mode=round"):
        to_nir(net, max_delay_elements=10_000)
