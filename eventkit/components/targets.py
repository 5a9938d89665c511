"""Where a trained network goes: the Target protocol.

A target is chosen by config (``target=cpu``, ``target=loihi2``) and is consulted twice: before
training, ``check`` rejects configs the hardware cannot run (so nobody trains for an hour to learn
that a delay is too long), and after training ``deploy`` turns the network into the target's
artefacts under ``run_dir/deploy/<name>`` and returns the numbers for ``summary.json``.
New hardware is a plugin that registers a target; the core needs no change. The built-in ``cpu``
target is here too.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from eventkit.data import DatasetSplits, SpikeData
from eventkit.base.files import atomic_path, json_default
from eventkit.base.hookspecs import hookimpl


@runtime_checkable
class Target(Protocol):
    name: str

    def check(self, net: Any, data: SpikeData) -> None:
        """Before training, with the built network (its ``topology``, neuron models, delays) and
        the training data (``n_channels``, ``n_steps``, ``dt``, ``n_classes``): raise ValueError
        naming the config key and the fix if the target cannot run them."""

    # Optional: ``adapt(cfg, explicit) -> list[str]`` -- called first, before the config is
    # recorded and anything is built: the target may change values it cannot run (e.g. loihi2
    # turns delays into whole steps of at most 62) in ``cfg`` and returns one notice per change,
    # which the run prints and keeps in summary.json and report.md. ``explicit`` holds the
    # overrides the user typed ("key=value"); a target should refuse, not change, a value the
    # user set explicitly. Read ``cfg.network`` through
    # :class:`eventkit.components.networks.NetworkConfig` rather than parsing it again.
    # Optional: ``prepare(net)`` -- called once the network is built, before training (the
    # loihi2 target uses it for quantisation-aware training). Targets without it are left alone.

    def deploy(self, net: Any, splits: DatasetSplits, run_dir: Path) -> dict:
        """After training: write artefacts under ``run_dir / "deploy" / self.name`` and return
        JSON-serialisable fields stored in ``summary.json["deploy"][self.name]``."""


def deploy_dir(run_dir: Path, target: Target) -> Path:
    """The directory a target writes into (created)."""
    path = Path(run_dir) / "deploy" / target.name
    path.mkdir(parents=True, exist_ok=True)
    return path


class CpuTarget:
    """Train and evaluate on this machine's CPU cores; deploy writes the trained network in a
    plain, framework-free form (safetensors weights + JSON description)."""

    name = "cpu"

    def check(self, net: Any, data: SpikeData) -> None:
        """Any network the engine builds runs on the CPU."""

    def deploy(self, net: Any, splits: DatasetSplits, run_dir: Path) -> dict:
        from safetensors.numpy import save_file

        exported = net.export()
        out = deploy_dir(run_dir, self)
        tensors: dict[str, np.ndarray] = {}
        layers = []
        arrays = ("w_ff", "w_rec", "d_ff", "d_rec")  # weights and delays (ms) go to safetensors
        for i, layer in enumerate(exported["layers"]):
            for key in arrays:
                if layer.get(key) is not None:
                    tensors[f"layer{i}.{key}"] = np.ascontiguousarray(layer[key], dtype=np.float32)
            layers.append({k: v for k, v in layer.items() if k not in arrays})
        for key in ("w", "d"):
            if exported["output"].get(key) is not None:
                tensors[f"output.{key}"] = np.ascontiguousarray(exported["output"][key], dtype=np.float32)
        description = {k: v for k, v in exported.items() if k not in ("layers", "output")}
        description["layers"] = layers
        description["output"] = {k: v for k, v in exported["output"].items() if k not in ("w", "d")}
        with atomic_path(out / "network.safetensors") as tmp:
            save_file(tensors, str(tmp))
        with atomic_path(out / "network.json") as tmp:
            tmp.write_text(json.dumps(description, indent=2, default=json_default))
        return {
            "files": ["network.safetensors", "network.json"],
            "parameters": int(sum(t.size for t in tensors.values())),
        }


@hookimpl
def register_targets(register):
    register("cpu", CpuTarget, "train on CPU; export weights as safetensors + JSON")
