"""Graphs written elsewhere: any node names, nested subgraphs, snnTorch's and Norse's exporters,
hand-made wirings; one-line errors that name the node; warnings where the run's dt falls short."""

from __future__ import annotations

import warnings

import nir
import numpy as np
import pytest
import torch

from conftest import make_net
from eventkit.plugin import LIF, SumV
from eventkit_nir import NirImportWarning, fix_norse, import_nir, network_from_nir, read_nir, to_nir


def _one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text.strip()
    return text


def _renamed(graph, names: dict[str, str]):
    nodes = {names.get(k, k): v for k, v in graph.nodes.items()}
    edges = [(names.get(a, a), names.get(b, b)) for a, b in graph.edges]
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=graph.metadata)


def _no_warnings(fn, *args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("error", NirImportWarning)
        return fn(*args, **kw)


# --------------------------------------------------------------------------- structure
@pytest.mark.parametrize("input_name", ["in", "x", "inp"])
def test_input_and_output_are_found_by_type_not_name(tmp_path, yinyang_batch, input_name):
    # catches: the Input looked up by the name "input" (KeyError: 'input'), or the Output by "output"
    net = make_net(recurrent=(True,))
    g = _renamed(to_nir(net), {"input": input_name, "output": "y", "hidden0": "lif1", "readout": "3", "ff0": "fc1"})
    nir.write(str(tmp_path / "m.nir"), g)
    back = network_from_nir(tmp_path / "m.nir", readout=SumV())
    assert torch.equal(back(yinyang_batch).readout, net(yinyang_batch).readout)


def test_nested_subgraph_reads_like_its_flat_graph(tmp_path, yinyang_batch):
    # a recurrent layer as a subgraph node (Input -> lif <-> w_rec -> Output inside), as NIR
    # allows and older snnTorch exports wrote. catches: NIRGraph nodes refused or left unexpanded,
    # edges into/out of the subgraph not joined to its Input/Output
    net = make_net(recurrent=(True,))
    with torch.no_grad():
        net.rec0.normal_(0.0, 0.3, generator=torch.Generator().manual_seed(1))
    flat = to_nir(net)
    sub = nir.NIRGraph(
        nodes={
            "input": nir.Input(np.array([60])),
            "lif": flat.nodes["hidden0"],
            "w_rec": flat.nodes["rec0"],
            "output": nir.Output(np.array([60])),
        },
        edges=[("input", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "output")],
    )
    nodes = {k: v for k, v in flat.nodes.items() if k not in ("hidden0", "rec0")}
    nodes["layer"] = sub
    edges = [("input", "ff0"), ("ff0", "layer"), ("layer", "out"), ("out", "readout"), ("readout", "output")]
    nir.write(str(tmp_path / "nested.nir"), nir.NIRGraph(nodes=nodes, edges=edges, metadata=flat.metadata))
    g = nir.read(str(tmp_path / "nested.nir"))
    assert isinstance(g.nodes["layer"], nir.NIRGraph)
    imported = import_nir(g, readout=SumV())
    assert "CubaLIF 'layer.lif' (60, recurrent)" in imported.summary
    back = imported.net
    assert back.recurrent == [True] and torch.equal(back.rec0, net.rec0)
    a, b = net(yinyang_batch), back(yinyang_batch)
    assert torch.equal(a.readout, b.readout) and torch.equal(a.counts, b.counts)


def test_any_synaptic_wiring_composes_into_the_same_connection(yinyang_batch):
    # ff0 rewritten as two Delay -> Scale -> Linear branches (one per delay value, the layout
    # older exports used) plus a Flatten. catches: branches not summed, Scale or Delay applied to
    # the wrong element, a synapse's delay taken from another branch
    net = make_net(delays={"ff": {"max": 1.0, "init": [0.0, 1.0], "mode": "round"}})
    g = to_nir(net)
    w = net.ff0.detach().double().numpy()
    d = np.rint(net.ff0_delay.detach().double().numpy() / 0.5) * 0.5
    nodes = {k: v for k, v in g.nodes.items() if not k.startswith("ff0_")}
    edges = [e for e in g.edges if not any(x.startswith("ff0_") for x in e)]
    scale = np.linspace(0.5, 2.0, 5)
    for k, value in enumerate(np.unique(d)):
        nodes[f"d{k}"] = nir.Delay(np.full(5, value * 1e-3))
        nodes[f"s{k}"] = nir.Scale(scale)
        nodes[f"w{k}"] = nir.Linear(np.where(d == value, w, 0.0) / scale)
        edges += [("input", f"d{k}"), (f"d{k}", f"s{k}"), (f"s{k}", f"w{k}"), (f"w{k}", "hidden0")]
    back = network_from_nir(nir.NIRGraph(nodes=nodes, edges=edges, metadata=g.metadata), readout=SumV())
    np.testing.assert_allclose(back.ff0.detach().numpy(), net.ff0.detach().numpy(), rtol=1e-6)
    np.testing.assert_array_equal(np.rint(back.ff0_delay.detach().numpy() / 0.5) * 0.5, d)
    assert torch.equal(back(yinyang_batch).counts, net(yinyang_batch).counts)


def test_a_synapse_with_two_delays_is_named():
    # catches: two paths with different delays for one synapse silently merged
    g = to_nir(make_net())
    nodes = dict(g.nodes)
    nodes["late"] = nir.Delay(np.full(5, 2e-3))
    nodes["extra"] = nir.Linear(np.asarray(g.nodes["ff0"].weight)[:, :] * 0 + np.eye(60, 5))
    edges = list(g.edges) + [("input", "late"), ("late", "extra"), ("extra", "hidden0")]
    with pytest.raises(ValueError) as exc:
        network_from_nir(nir.NIRGraph(nodes=nodes, edges=edges, metadata=g.metadata, type_check=False))
    text = _one_line(exc)
    assert "'input'[0] to 'hidden0'[0]" in text and "two delays" in text


def test_dangling_ends_are_named(tmp_path):
    # the edge ff0 -> hidden0 missing: nir adds an Input at 'hidden0' and an Output at 'ff0'.
    # catches: "needs one Input and one Output node, it has 2 and 2" without naming them
    g = to_nir(make_net())
    edges = [e for e in g.edges if e != ("ff0", "hidden0")]
    nir.write(str(tmp_path / "d.nir"), nir.NIRGraph(nodes=dict(g.nodes), edges=list(edges), metadata=g.metadata))
    with pytest.raises(ValueError) as exc:
        network_from_nir(tmp_path / "d.nir")
    text = _one_line(exc)
    assert "'input_hidden0'" in text and "'output_ff0'" in text and "added by nir" in text
    assert "Fix: add the missing edges out of 'ff0' and into 'hidden0'" in text
    # the same graph never type-checked (no nodes added): the dangling nodes are still named
    raw = nir.NIRGraph(nodes=dict(g.nodes), edges=edges, metadata=g.metadata, type_check=False)
    with pytest.raises(ValueError) as exc:
        network_from_nir(raw)
    text = _one_line(exc)
    assert "nothing feeds 'hidden0'" in text and "'ff0' feeds nothing" in text


def test_each_dangling_end_is_named_with_its_direction(tmp_path):
    # two edges missing at both ends of the graph: nir adds three Inputs and three Outputs.
    # catches: "needs one Input and one Output node, it has 3 and 3", or a fix that names the
    # nodes but not which edge (into or out of them) is missing
    g = to_nir(make_net())
    missing = [("input", "ff0"), ("readout", "output")]
    edges = [e for e in g.edges if e not in missing]
    nir.write(str(tmp_path / "d.nir"), nir.NIRGraph(nodes=dict(g.nodes), edges=list(edges), metadata=g.metadata))
    with pytest.raises(ValueError) as exc:
        network_from_nir(tmp_path / "d.nir")
    text = _one_line(exc)
    assert "it has 3 Input nodes ('input' feeds 'output_input', 'input_ff0' feeds 'ff0'" in text, text
    assert "Fix: add the missing edges out of 'input', 'readout' and into 'ff0', 'output'" in text, text
    # the fix works: the edges it names, added back, give a graph that reads
    raw = nir.NIRGraph(nodes=dict(g.nodes), edges=edges, metadata=g.metadata, type_check=False)
    with pytest.raises(ValueError) as exc:
        network_from_nir(raw)
    assert "nothing feeds 'output', 'ff0'; 'input', 'readout' feed nothing" in _one_line(exc)
    fixed = nir.NIRGraph(nodes=dict(g.nodes), edges=[*edges, *missing], metadata=g.metadata)
    network_from_nir(fixed)


def test_unsupported_node_is_named_as_unsupported(tmp_path):
    # a Conv2d on a vector input fails nir's own shape inference; the reader must still say
    # that Conv2d is not supported. catches: a shape-mismatch or "not a readable file" message
    g = to_nir(make_net())
    nodes = dict(g.nodes)
    nodes["conv"] = nir.Conv2d(
        input_shape=(5, 1), weight=np.ones((1, 1, 3, 3)), stride=1, padding=0, dilation=1, groups=1, bias=np.zeros(1)
    )
    edges = [e for e in g.edges if e != ("input", "ff0")] + [("input", "conv"), ("conv", "ff0")]
    nir.write(str(tmp_path / "c.nir"), nir.NIRGraph(nodes=nodes, edges=edges, metadata=g.metadata, type_check=False))
    with pytest.raises(ValueError) as exc:
        network_from_nir(read_nir(tmp_path / "c.nir"))
    text = _one_line(exc)
    assert "node 'conv': Conv2d is not supported" in text
    # a neuron without synaptic current gets the node to use instead
    nodes = dict(g.nodes)
    nodes["hidden0"] = nir.LIF(tau=np.full(60, 0.02), r=np.ones(60), v_leak=np.zeros(60), v_threshold=np.ones(60))
    with pytest.raises(ValueError) as exc:
        network_from_nir(nir.NIRGraph(nodes=nodes, edges=g.edges, metadata=g.metadata, type_check=False))
    assert "node 'hidden0': LIF is not supported" in _one_line(exc) and "CubaLIF; snnTorch: snn.Synaptic" in str(
        exc.value
    )


# --------------------------------------------------------------------------- snnTorch, Norse
def _snntorch_graph(recurrent_bias_zero: bool = True):
    snn = pytest.importorskip("snntorch")
    from snntorch.export_nir import export_to_nir

    torch.manual_seed(0)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = torch.nn.Linear(5, 8, bias=False)
            self.lif1 = snn.RSynaptic(
                alpha=torch.full((8,), 0.9), beta=torch.full((8,), 0.95), linear_features=8, init_hidden=True
            )
            if recurrent_bias_zero:
                self.lif1.recurrent.bias.data.zero_()
            self.fc2 = torch.nn.Linear(8, 3, bias=False)
            self.lif2 = snn.Synaptic(
                alpha=torch.full((3,), 0.8),
                beta=torch.full((3,), 0.9),
                threshold=torch.full((3,), 0.5),
                init_hidden=True,
                output=True,
            )

        def forward(self, x):
            return self.lif2(self.fc2(self.lif1(self.fc1(x))))

    model = Net()
    return model, export_to_nir(model, torch.randn(1, 5), ignore_dims=[0])


def test_snntorch_export_imports_with_its_own_units(tmp_path):
    # snnTorch writes per-neuron vectors, its recurrent layer as 'lif1.lif' / 'lif1.w_rec', dt 1e-4 s
    # in r = tau_mem/dt and w_in = tau_syn/dt. catches: r or w_in not folded (threshold off by
    # tau_mem/dt), time constants in the wrong unit, the file's own step not used
    model, g = _snntorch_graph()
    nir.write(str(tmp_path / "s.nir"), g)
    imported = _no_warnings(import_nir, tmp_path / "s.nir", readout=SumV())
    net = imported.net
    assert net.dt == pytest.approx(0.1) and net.recurrent == [True]
    hid, out = net.neurons[0], net.output
    assert hid.tau_mem == pytest.approx(0.1 / (1 - 0.95), rel=1e-5) and hid.tau_syn == pytest.approx(
        0.1 / (1 - 0.9), rel=1e-5
    )
    assert out.spiking and out.threshold == pytest.approx(0.5 * (1 - 0.9), rel=1e-5)  # v is V * tau_mem/dt
    np.testing.assert_allclose(net.ff0.detach().numpy(), model.fc1.weight.detach().numpy(), rtol=1e-6)
    np.testing.assert_allclose(net.rec0.detach().numpy(), model.lif1.recurrent.weight.detach().numpy(), rtol=1e-6)
    np.testing.assert_allclose(net.out.detach().numpy(), model.fc2.weight.detach().numpy(), rtol=1e-6)
    assert "readout CubaLIF 'lif2' runs as lif" in imported.summary


def test_snntorch_recurrent_bias_is_refused_in_one_line():
    # snnTorch's RSynaptic has a recurrent bias by default: a constant input eventkit lacks
    _, g = _snntorch_graph(recurrent_bias_zero=False)
    with pytest.raises(ValueError) as exc:
        network_from_nir(g)
    assert "node 'lif1.w_rec' (Affine) has a nonzero bias" in _one_line(exc)


def test_a_coarser_step_than_the_file_warns_with_the_step_that_suits_it():
    # snnTorch's tau_mem 1 ms neurons, made for 0.1 ms steps, run at 0.5 ms.
    # catches: no warning, or a warning naming the wrong dt
    _, g = _snntorch_graph()
    with pytest.warns(NirImportWarning) as rec:
        network_from_nir(g, dt=0.5)
    (w,) = rec
    text = str(w.message)
    assert (
        "\n" not in text
        and "step of 0.1 ms" in text
        and "up to 5 times" in text
        and text.endswith("Fix: dataset.dt=0.1")
    )
    _no_warnings(network_from_nir, g, dt=0.05)  # a finer step is faithful


def test_an_eventkit_file_at_another_step_keeps_its_spike_strength(yinyang_batch):
    # a spike's w_in refers to the file's step, not the run's. catches: weights rescaled by
    # run dt / file dt (each spike acting twice as strongly at dt 1 ms)
    net = make_net()
    g = to_nir(net)
    fine = _no_warnings(network_from_nir, g, dt=0.25, n_steps=240, readout=SumV())
    np.testing.assert_allclose(fine.ff0.detach().numpy(), net.ff0.detach().numpy(), rtol=1e-6)
    assert fine.neurons[0].threshold == pytest.approx(net.neurons[0].threshold)
    with pytest.warns(NirImportWarning, match=r"Fix: dataset.dt=0.5$"):
        network_from_nir(g, dt=1.0, n_steps=60)


def test_norse_to_nir_graph_is_detected_and_repaired(tmp_path):
    # Norse 1.1.0 writes tau = dt / tau_inv with r = w_in = 1 and scalar parameters.
    # catches: such a file trained as a network of 0.01 ms neurons; the repair leaving tau a
    # factor dt off, or w_in at 1 (a spike would act dt/tau_syn = 0.2 times as strongly as in Norse)
    nt = pytest.importorskip("norse.torch")
    torch.manual_seed(0)
    model = nt.SequentialState(
        torch.nn.Linear(5, 8, bias=False), nt.LIFCell(), torch.nn.Linear(8, 3, bias=False), nt.LIFCell()
    )
    g = nt.to_nir(model, torch.randn(1, 5), dt=1e-3)
    with pytest.raises(ValueError) as exc:
        network_from_nir(g, dt=1.0)
    text = _one_line(exc)
    assert "Norse 1.1.0" in text and "tau = dt / tau_inv" in text and "fix_norse(graph, dt=" in text
    fixed = fix_norse(g, dt=1e-3)
    nir.write(str(tmp_path / "norse.nir"), fixed)  # per-neuron vectors: nir.write stores them
    net = _no_warnings(network_from_nir, tmp_path / "norse.nir", readout=SumV())
    assert net.dt == pytest.approx(1.0)
    for m in (net.neurons[0], net.output):
        assert m.tau_mem == pytest.approx(10.0, rel=1e-6) and m.tau_syn == pytest.approx(5.0, rel=1e-6)
        assert m.threshold == pytest.approx(1.0, rel=1e-6)  # LIFCell: a spike adds w to the current
    np.testing.assert_allclose(net.ff0.detach().numpy(), model[0].weight.detach().numpy(), rtol=1e-6)


def test_norse_repair_command_line(tmp_path):
    # a Norse graph saved without compression (nir.write cannot gzip its scalars) repaired by the CLI
    nt = pytest.importorskip("norse.torch")
    from eventkit_nir.norse_repair import main

    g = nt.to_nir(nt.SequentialState(torch.nn.Linear(5, 4, bias=False), nt.LIFCell()), torch.randn(1, 5), dt=1e-3)
    g = nir.NIRGraph(nodes={k: v for k, v in g.nodes.items()}, edges=g.edges, type_check=False)
    for node in g.nodes.values():
        for k, v in list(vars(node).items()):
            if isinstance(v, torch.Tensor):
                setattr(node, k, v.detach().numpy())
    nir.write(str(tmp_path / "raw.nir"), g, compression=None)
    with pytest.raises(ValueError, match="Norse 1.1.0"):
        network_from_nir(tmp_path / "raw.nir")
    assert main([str(tmp_path / "raw.nir"), str(tmp_path / "ok.nir"), "--dt", "0.001"]) == 0
    net = _no_warnings(network_from_nir, tmp_path / "ok.nir")  # Input -> Linear -> a spiking readout
    assert (net.n_in, net.n_out, net.hidden) == (5, 4, [])
    assert net.output.tau_mem == pytest.approx(10.0, rel=1e-6) and net.dt == pytest.approx(1.0)


def test_spiking_readout_is_named_in_the_summary():
    # catches: the summary (and the run banner it accompanies) naming a readout other than the file's
    net = make_net(output=LIF(tau_mem=20.0, tau_syn=5.0, threshold=0.7))
    g = _renamed(to_nir(net), {"readout": "decision"})
    imported = import_nir(g, readout=SumV())
    assert imported.net.output.name == "lif"
    assert imported.summary.endswith("readout CubaLIF 'decision' runs as lif (tau_mem 20 ms, tau_syn 5 ms)")


def test_output_size_must_match_the_readout():
    # catches: an Output declaring another size than the readout it reads, accepted silently
    g = to_nir(make_net())
    nodes = dict(g.nodes)
    nodes["output"] = nir.Output(np.array([4]))
    with pytest.raises(ValueError) as exc:
        network_from_nir(nir.NIRGraph(nodes=nodes, edges=g.edges, metadata=g.metadata, type_check=False))
    assert "the Output node 'output' has 4 entries, its readout 'readout' 3 neurons" in _one_line(exc)
