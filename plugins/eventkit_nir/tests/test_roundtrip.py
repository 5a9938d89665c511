"""export -> nir.write -> nir.read -> import gives the same network and the same forward pass;
bad files and graphs give one-line errors."""

from __future__ import annotations

import nir
import numpy as np
import pytest
import torch

from conftest import make_net
from eventkit.plugin import LIF, SumV
from eventkit_nir import network_from_nir, read_nir, to_nir, write_nir

DELAYS = {
    "none": None,
    "ff_round": {"ff": {"max": 5.0, "init": [0.0, 5.0], "mode": "round"}},
    "out_exact": {"out": {"max": 3.0, "init": [0.0, 3.0], "mode": "exact", "learn": False}},
    "ff_exact": {"ff": {"max": 5.0, "init": [0.0, 5.0], "mode": "exact"}},
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


def test_learned_time_constants_are_what_the_file_holds(tmp_path, yinyang_batch):
    """A network whose time constants were learned (learn_tau) writes its current values, per
    layer, and reads back as a network with those fixed values that simulates identically.
    Catches an export that reads the models the network was built with."""
    net = make_net(hidden=(40, 20), recurrent=(True, False), learn_tau={"tau_mem": [8.0, 60.0], "tau_syn": [1.0, 7.0]})
    with torch.no_grad():
        net.tau_mem0.fill_(31.5)
        net.tau_syn1.fill_(2.25)
    graph = nir.read(str(write_nir(net, tmp_path / "model.nir")))
    np.testing.assert_allclose(graph.nodes["hidden0"].tau_mem, 0.0315)
    np.testing.assert_allclose(graph.nodes["hidden1"].tau_syn, 0.00225)
    np.testing.assert_allclose(graph.nodes["hidden1"].tau_mem, 0.020)
    back = network_from_nir(graph, readout=SumV())
    assert not back.learn_tau
    for got, want in zip(back.neurons, net.neurons):
        assert (got.tau_mem, got.tau_syn) == (want.tau_mem, want.tau_syn)
        assert got.threshold == pytest.approx(want.threshold, rel=1e-12)  # NIR's voltage scale
    a, b = net(yinyang_batch), back(yinyang_batch)
    assert a.counts.sum() > 0 and torch.equal(a.counts, b.counts)
    torch.testing.assert_close(a.readout, b.readout, rtol=1e-6, atol=0)


def test_graph_shape_and_recurrence_cycle():
    # catches: recurrence written as anything but the hidden -> rec -> hidden cycle, a readout
    # of the wrong node type, delayed synapses not as per-neuron one-hot/weight/Delay branches
    net = make_net(recurrent=(True,), delays={"ff": {"max": 2.0, "init": [0.0, 2.0], "mode": "round"}})
    g = to_nir(net)
    assert ("hidden0", "rec0") in g.edges and ("rec0", "hidden0") in g.edges
    assert isinstance(g.nodes["readout"], nir.CubaLI) and ("readout", "output") in g.edges
    assert isinstance(g.nodes["hidden0"], nir.CubaLIF)
    # 5 inputs < 60 hidden: one branch per presynaptic neuron, input -> pick -> weights -> Delay
    for i in range(5):
        pick, wts, dly = (g.nodes[f"ff0_{k}{i}"] for k in ("pre", "w", "d"))
        assert [
            ("input", f"ff0_pre{i}"),
            (f"ff0_pre{i}", f"ff0_w{i}"),
            (f"ff0_w{i}", f"ff0_d{i}"),
            (f"ff0_d{i}", "hidden0"),
        ] == [e for e in g.edges if f"ff0_pre{i}" in e or f"ff0_w{i}" in e or f"ff0_d{i}" in e]
        np.testing.assert_array_equal(pick.weight, np.eye(5)[i : i + 1])
        np.testing.assert_array_equal(wts.weight[:, 0], net.ff0.detach().double().numpy()[:, i])
        np.testing.assert_array_equal(dly.delay * 1e3, _effective_delay(net, net.topology.connection("ff0"))[:, i])
    assert not any(n.startswith("ff0_pre5") for n in g.nodes)
    # the spike of weight w adds dt/tau_syn * w_in * w = w under the importers' Euler step
    node = g.nodes["hidden0"]
    np.testing.assert_allclose(0.5e-3 / node.tau_syn * node.w_in, 1.0)
    np.testing.assert_allclose(node.tau_mem, 20e-3)


def test_delayed_connection_with_fewer_targets_is_written_per_target(yinyang_batch):
    # out: 60 hidden -> 3 outputs, so one branch per output neuron (Delay -> weights -> one-hot).
    # catches: the per-target orientation transposed, delivering to the wrong neuron or pairing
    # a weight with another synapse's delay
    net = make_net(delays={"out": {"max": 3.0, "init": [0.0, 3.0], "mode": "exact", "learn": False}})
    g = to_nir(net)
    assert sorted(n for n in g.nodes if n.startswith("out_post")) == ["out_post0", "out_post1", "out_post2"]
    np.testing.assert_array_equal(g.nodes["out_post1"].weight[:, 0], [0.0, 1.0, 0.0])
    np.testing.assert_array_equal(g.nodes["out_w2"].weight[0], net.out.detach().double().numpy()[2])
    back = network_from_nir(g, readout=SumV())
    np.testing.assert_array_equal(back.out_delay.detach().numpy(), net.out_delay.detach().numpy())
    assert torch.equal(back(yinyang_batch).readout, net(yinyang_batch).readout)


def test_delay_export_size_does_not_grow_with_distinct_delays():
    # every synapse its own delay (300 distinct values) costs the same nodes as 2 values.
    # catches: a return to one Delay -> Linear branch per distinct delay value
    few = to_nir(make_net(delays={"ff": {"max": 3.0, "init": [0.0, 3.0], "mode": "round"}}))
    many = to_nir(make_net(delays={"ff": {"max": 3.0, "init": [0.0, 3.0], "mode": "exact"}}))
    assert len(few.nodes) == len(many.nodes) == 5 + 3 * 5  # input, hidden0, readout, out, output + 5 branches
    stored = sum(
        np.asarray(v.weight if isinstance(v, nir.Linear) else v.delay).size
        for k, v in many.nodes.items()
        if k.startswith("ff0_")
    )
    assert stored == 5 * 5 + 2 * 5 * 60  # one-hot picks + weights + delays


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


@pytest.mark.parametrize("convention", ["seconds", "snntorch"])
def test_per_neuron_time_constants_round_trip(tmp_path, yinyang_batch, convention):
    """A network with per-neuron time constants (tau_per_neuron) writes each neuron's own tau_mem
    and tau_syn (and, in the snnTorch convention, its own r and v_threshold), and reads back as a
    network with the same per-neuron values (learnable per neuron, within the span the file
    holds) that simulates identically. Catches an export that writes the layer's declared value
    for every neuron, and an import that drops or reorders the neurons' values."""
    net = make_net(
        hidden=(40, 20),
        recurrent=(True, False),
        learn_tau={"tau_mem": [8.0, 60.0], "tau_syn": [1.0, 7.0]},
        tau_per_neuron=True,
        tau_init="log_uniform",
    )
    taus = net.time_constants()
    graph = nir.read(str(write_nir(net, tmp_path / "model.nir", convention=convention)))
    unit = 1000.0 if convention == "seconds" else net.dt / 1e-4  # ms per NIR time unit
    for k, layer in enumerate(taus):
        node = graph.nodes[f"hidden{k}"]
        assert np.ptp(layer["tau_mem"]) > 10.0
        np.testing.assert_allclose(node.tau_mem, layer["tau_mem"] / unit, rtol=1e-12)
        np.testing.assert_allclose(node.tau_syn, layer["tau_syn"] / unit, rtol=1e-12)
        r = layer["tau_mem"] / net.dt if convention == "snntorch" else np.ones(len(layer["tau_mem"]))
        np.testing.assert_allclose(node.r, r, rtol=1e-12)
        np.testing.assert_allclose(node.v_threshold, net.neurons[k].threshold * r, rtol=1e-12)
    back = network_from_nir(graph, readout=SumV())
    assert back.tau_per_neuron and set(back.learn_tau) == {"tau_mem", "tau_syn"}
    for got, want in zip(back.time_constants(), taus):
        for key in ("tau_mem", "tau_syn"):
            np.testing.assert_allclose(got[key], want[key], rtol=1e-9)
    a, b = net(yinyang_batch), back(yinyang_batch)
    assert a.counts.sum() > 0 and torch.equal(a.counts, b.counts)
    torch.testing.assert_close(a.readout, b.readout, rtol=1e-5, atol=1e-6)


def test_a_readout_with_per_neuron_time_constants_is_refused_in_one_line():
    """eventkit's readout population has one time constant; a file whose readout neurons differ
    is refused, naming the node (hidden layers may differ: the test above)."""
    graph = to_nir(make_net(hidden=(20,)))
    tau = np.array(graph.nodes["readout"].tau_mem, dtype=np.float64)
    tau[1] *= 1.5
    graph.nodes["readout"].tau_mem = tau
    with pytest.raises(ValueError) as err:
        network_from_nir(graph, readout=SumV())
    message = str(err.value)
    assert "node 'readout'" in message and "tau_mem differs between neurons" in message
    assert "Fix: export the readout with a uniform time constant" in message and "\n" not in message
