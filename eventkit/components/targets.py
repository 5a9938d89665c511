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
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from eventkit.data import DatasetSplits, SpikeData
from eventkit.base.files import atomic_path, json_default
from eventkit.base.hookspecs import hookimpl

if TYPE_CHECKING:
    from eventkit.components.networks import ConnectionDelay


class Target(ABC):
    """What every target is: a subclass names itself (``name``) and implements ``check`` and
    ``deploy``; ``adapt`` and ``prepare`` do nothing unless it overrides them. The run calls all
    four, in the order ``adapt``, ``check``, ``prepare``, ``deploy``."""

    name: str

    def adapt(self, cfg: Any, explicit: list[str], delays: Mapping[str, ConnectionDelay]) -> list[str]:
        """Called first, before the config is recorded and anything is built: the target may
        change values it cannot run (e.g. loihi2 turns delays into whole steps of at most 62) in
        ``cfg`` and returns one notice per change, which the run prints and keeps in summary.json
        and report.md. ``explicit`` holds the overrides the user typed ("key=value"); a target
        should refuse, not change, a value the user set explicitly. ``delays``: connection name ->
        its :class:`~eventkit.components.networks.ConnectionDelay` (kind, the layer it feeds,
        the ``network.delays`` key that set it, the typed :class:`Delay`), for deciding; changes
        go into ``cfg``."""
        return []

    @abstractmethod
    def check(self, net: Any, data: SpikeData) -> None:
        """Before training, with the built network (its ``topology``, neuron models, delays) and
        the training data (``n_channels``, ``n_steps``, ``dt``, ``n_classes``): raise ValueError
        naming the config key and the fix if the target cannot run them."""

    def prepare(self, net: Any) -> None:
        """Called once the network is built, before training: the target may set
        ``net.simulation`` (the loihi2 target uses it for quantisation-aware training)."""

    @abstractmethod
    def deploy(self, net: Any, splits: DatasetSplits, run_dir: Path) -> dict:
        """After training: write artefacts under ``run_dir / "deploy" / self.name`` and return
        JSON-serialisable fields stored in ``summary.json["deploy"][self.name]``."""


def as_target(obj: Any, name: str) -> Target:
    """``obj`` (what the registered factory of target ``name`` built) if it is a :class:`Target`;
    otherwise one line saying how to make it one."""
    if not isinstance(obj, Target):
        raise ValueError(
            f"target={name}: its factory returned a {type(obj).__name__}, not an eventkit.plugin.Target. "
            "Fix: derive the target class from eventkit.plugin.Target"
        )
    return obj


def deploy_dir(run_dir: Path, target: Target) -> Path:
    """The directory a target writes into (created)."""
    path = Path(run_dir) / "deploy" / target.name
    path.mkdir(parents=True, exist_ok=True)
    return path


class CpuTarget(Target):
    """Train and evaluate on this machine's CPU cores; deploy writes the trained network in a
    plain, framework-free form (safetensors weights + JSON description)."""

    name = "cpu"

    def check(self, net: Any, data: SpikeData) -> None:
        """Any network the engine builds runs on the CPU."""

    def deploy(self, net: Any, splits: DatasetSplits, run_dir: Path) -> dict:
        """``network.safetensors``: per hidden layer ``layer<i>.w_ff`` / ``.w_rec`` (weights) and
        ``.d_ff`` / ``.d_rec`` (delays, ms), ``output.w`` / ``output.d``, float32, from the
        connections of ``net.topology``, and ``layer<i>.tau_mem`` / ``.tau_syn`` (ms) where a
        layer's time constants are per neuron; ``network.json``: dt, steps, sizes, readout, delay
        settings and each population's neuron model (a layer's ``per_neuron`` lists the time
        constants its model's values stand in for)."""
        from safetensors.numpy import save_file

        out = deploy_dir(run_dir, self)
        tensors: dict[str, np.ndarray] = {}
        for conn in net.topology.connections:
            prefix = "output." if conn.kind == "out" else f"layer{conn.post.index}."
            suffix = "" if conn.kind == "out" else f"_{conn.kind}"
            tensors[f"{prefix}w{suffix}"] = _float32(getattr(net, conn.name))
            if conn.delay is not None:
                tensors[f"{prefix}d{suffix}"] = _float32(getattr(net, conn.delay_name))
        topology = net.topology
        per_neuron = sorted(net.learn_tau) if getattr(net, "tau_per_neuron", False) else []
        for k, layer in enumerate(net.time_constants() if per_neuron else ()):
            for key in per_neuron:
                tensors[f"layer{k}.{key}"] = np.ascontiguousarray(layer[key], dtype=np.float32)
        description = dict(
            dt=net.dt,
            n_steps=net.n_steps,
            n_in=net.n_in,
            n_out=net.n_out,
            readout=net.readout.describe(),
            delays={c.name: dict(max=c.delay.max, mode=c.delay.mode, learn=c.delay.learn) for c in topology.delayed},
            layers=[
                dict(neuron=net.describe_neuron(pop.model), **({"per_neuron": per_neuron} if per_neuron else {}))
                for pop in topology.hidden
            ],
            output=dict(neuron=net.describe_neuron(topology.output.model)),
        )
        with atomic_path(out / "network.safetensors") as tmp:
            save_file(tensors, str(tmp))
        with atomic_path(out / "network.json") as tmp:
            tmp.write_text(json.dumps(description, indent=2, default=json_default))
        return {
            "files": ["network.safetensors", "network.json"],
            "parameters": int(sum(t.size for t in tensors.values())),
        }


def _float32(parameter) -> np.ndarray:
    return np.ascontiguousarray(parameter.detach().cpu().numpy(), dtype=np.float32)


@hookimpl
def register_targets(register):
    register("cpu", CpuTarget, "train on CPU; export weights as safetensors + JSON")
