"""target=nir in a run, and network.from_file reading its model.nir back into another run."""

from __future__ import annotations

import json

import nir
import pytest
import torch

from eventkit.plugin import run
from eventkit.plugin import compose

TINY = [
    "dataset.n_train=120",
    "dataset.n_val=40",
    "dataset.n_test=60",
    "trainer.epochs=1",
    "network.hidden=30",
    "trainer.progress=false",
]


def test_target_writes_model_nir_and_from_file_trains_it(tmp_path):
    # catches: the target not writing/reading back its file, the plugin's conf dir or the
    # network_format hook not registered, from_file ignored (the second run would build a
    # fresh 30-neuron network from the config instead of the file's 30 -> checked via weights)
    first = run(compose(TINY + ["target=nir"]), tmp_path / "a")
    deployed = first["deploy"]["nir"]
    model = tmp_path / "a" / "deploy" / "nir" / "model.nir"
    assert model.is_file() and deployed["roundtrip_prediction_agreement"] == 1.0
    assert json.loads((tmp_path / "a" / "deploy" / "nir" / "nir.json").read_text())["bytes"] > 0
    graph = nir.read(str(model))
    second = run(compose(TINY + [f"network.from_file={model}", "network.hidden=7", "target=nir"]), tmp_path / "b")
    assert second["status"] == "ok"
    again = nir.read(str(tmp_path / "b" / "deploy" / "nir" / "model.nir"))
    assert again.nodes["hidden0"].tau_mem.size == graph.nodes["hidden0"].tau_mem.size == 30


def test_from_file_banner_names_the_files_readout_and_warns_about_dt(tmp_path, capsys):
    # a graph made elsewhere (Input 'x', readout 'decision', a spiking readout, made for 0.1 ms
    # steps) on Yin-Yang's 0.5 ms. catches: the banner printing the config's "-> 3 li" instead of
    # the file's spiking readout; the dt warning not reaching the console
    snn = pytest.importorskip("snntorch")
    from snntorch.export_nir import export_to_nir

    torch.manual_seed(0)

    def synaptic(n, alpha, beta):  # per-neuron vectors: snnTorch cannot export scalar ones
        full = lambda x: torch.full((n,), x)  # noqa: E731
        return snn.Synaptic(alpha=full(alpha), beta=full(beta), threshold=full(1.0), init_hidden=True)

    model = torch.nn.Sequential(
        torch.nn.Linear(5, 8, bias=False),
        synaptic(8, 0.9, 0.95),
        torch.nn.Linear(8, 3, bias=False),
        synaptic(3, 0.8, 0.9),
    )
    g = export_to_nir(model, torch.randn(1, 5), ignore_dims=[0])
    names = {"input": "x", "3": "decision", "output": "y"}
    g = nir.NIRGraph(
        nodes={names.get(k, k): v for k, v in g.nodes.items()},
        edges=[(names.get(a, a), names.get(b, b)) for a, b in g.edges],
    )
    nir.write(str(tmp_path / "snn.nir"), g)
    summary = run(compose(TINY + [f"network.from_file={tmp_path / 'snn.nir'}"]), tmp_path / "r")
    assert summary["status"] == "ok"
    out, err = capsys.readouterr()
    banner = next(line for line in out.splitlines() if line.startswith("eventkit: yinyang"))
    assert "-> 3 lif," in banner
    assert "readout CubaLIF 'decision' runs as lif" in out and "Input 'x' (5)" in out
    assert "step of 0.1 ms" in err and "Fix: dataset.dt=0.1" in err


def test_from_file_dangling_graph_fails_in_one_line(tmp_path):
    # catches: a Hydra traceback or a message that names no node
    from eventkit.plugin import ConfigError

    from conftest import make_net
    from eventkit_nir import to_nir

    g = to_nir(make_net())
    edges = [e for e in g.edges if e != ("out", "readout")]
    nir.write(str(tmp_path / "d.nir"), nir.NIRGraph(nodes=dict(g.nodes), edges=edges, metadata=g.metadata))
    with pytest.raises(ConfigError) as exc:
        run(compose(TINY + [f"network.from_file={tmp_path / 'd.nir'}"]), tmp_path / "r")
    text = str(exc.value)
    assert "\n" not in text and "out of 'out' and into 'readout'" in text, text
    assert json.loads((tmp_path / "r" / "summary.json").read_text())["status"] == "failed"
