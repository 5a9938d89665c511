"""target=nir in a run, and network.from_file reading its model.nir back into another run."""

from __future__ import annotations

import json

import nir

from eventkit.app import run
from eventkit.config import compose

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
