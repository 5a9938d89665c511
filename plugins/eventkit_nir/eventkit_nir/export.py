"""EventpropNet -> NIR graph.

Node names: ``input``; one ``hidden<k>`` CubaLIF per hidden layer; ``readout`` (CubaLI, or a
CubaLIF); ``output``. A connection without delays is one Linear named like the eventkit
connection (``ff0``, ``rec0``, ``out``; weight (n_post, n_pre)); recurrence is the cycle
``hidden<k> -> rec<k> -> hidden<k>``. A connection with per-synapse delays becomes one branch per
distinct delay value ``d``: ``pre -> <name>_delay<g>`` (a Delay of ``d`` for every presynaptic
neuron) ``-> <name>_w<g>`` (the Linear holding the weights of the synapses with that delay, zeros
elsewhere) ``-> post``; summed at the target they are the delayed connection. Delays are written as
the engine simulates them: ``mode=round`` ones as whole steps.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .conventions import NON_SPIKING_THRESHOLD, READOUT_NODES, Convention

#: largest number of weight entries the branches of one delayed connection may hold together
MAX_DELAY_ELEMENTS = 2**26
HIDDEN_MODELS = ("lif",)
OUTPUT_MODELS = ("li", "lif")


def to_nir(
    net: Any, *, convention: str = "seconds", readout_as: str = "cubali", max_delay_elements: int = MAX_DELAY_ELEMENTS
):
    """The NIR graph of ``net`` (an :class:`eventkit.engine.EventpropNet` with LIF hidden layers
    and an LI or LIF output), in ``convention`` (see :mod:`eventkit_nir.conventions`).
    ``readout_as="cubalif"`` writes a non-spiking LI readout as a CubaLIF that never fires
    (threshold 1e30), for importers without LI/CubaLI nodes. Raises ValueError for a network the
    format cannot hold."""
    import nir

    if readout_as not in READOUT_NODES:
        raise ValueError(f"readout_as must be one of {list(READOUT_NODES)}, got {readout_as!r}")
    conv = Convention.make(convention, net.dt)
    topo = net.topology
    for pop in topo.hidden:
        _check_model(pop.model, HIDDEN_MODELS, f"hidden layer {pop.index}", "neuron=lif")
    _check_model(topo.output.model, OUTPUT_MODELS, "the output", "network.output.name=li")
    weights, delays, thresholds = net.effective_parameters()

    def node_name(pop) -> str:
        if pop.is_input:
            return "input"
        return "readout" if pop is topo.output or pop.index == topo.output.index else f"hidden{pop.index}"

    nodes: dict[str, Any] = {
        "input": nir.Input(np.array([topo.input.size])),
        "output": nir.Output(np.array([topo.output.size])),
    }
    edges: list[tuple[str, str]] = []
    for pop in topo.populations:
        theta = thresholds.get(pop.index)
        nodes[node_name(pop)] = _neuron_node(pop.model, pop.size, conv, readout_as, theta)
    edges.append(("readout", "output"))
    delay_meta = {}
    for conn in topo.connections:
        pre, post = node_name(conn.pre), node_name(conn.post)
        w = np.asarray(weights[conn.name], dtype=np.float64)
        if conn.delay is None:
            nodes[conn.name] = nir.Linear(w)
            edges += [(pre, conn.name), (conn.name, post)]
            continue
        d = _simulated_delays(delays[conn.name], conn.delay.mode, net.dt)
        values = np.unique(d)
        if values.size * w.size > max_delay_elements:
            raise ValueError(
                f"connection {conn.name}: {values.size} distinct delays would need {values.size} "
                f"branches of {w.shape[0]}x{w.shape[1]} weights in NIR. Fix: train with "
                f"network.delays.{conn.kind}.mode=round (whole-step delays)"
            )
        for g, value in enumerate(values):
            dname, lname = f"{conn.name}_delay{g}", f"{conn.name}_w{g}"
            nodes[dname] = nir.Delay(np.full(conn.pre.size, conv.time(float(value))))
            nodes[lname] = nir.Linear(np.where(d == value, w, 0.0))
            edges += [(pre, dname), (dname, lname), (lname, post)]
        delay_meta[conn.name] = {
            "max_ms": float(conn.delay.max),
            "mode": conn.delay.mode,
            "learn": "true" if conn.delay.learn else "false",
        }
    meta = {
        "eventkit": {
            **conv.metadata(),
            "n_steps": int(net.n_steps),
            "readout": str(net.readout.describe().get("name")),
            "delays": delay_meta,
        }
    }
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=meta)


def write_nir(net: Any, path: str | Path, **options) -> Path:
    """Write ``to_nir(net, **options)`` to ``path`` with ``nir.write`` (written to a temporary
    name and renamed, so a killed run leaves no half-written file)."""
    import nir

    path = Path(path)
    graph = to_nir(net, **options)
    tmp = path.with_name(path.name + ".tmp")
    nir.write(str(tmp), graph)
    tmp.replace(path)
    return path


def _check_model(model, allowed: tuple[str, ...], where: str, fix: str) -> None:
    name = getattr(model, "name", type(model).__name__)
    if name not in allowed:
        raise ValueError(
            f"{where} uses neuron model {name!r}; NIR export writes {'/'.join(allowed)} "
            f"neurons as CubaLIF/CubaLI. Fix: {fix}"
        )


def _neuron_node(model, n: int, conv: Convention, readout_as: str, theta: float | None):
    import nir

    tau_mem, tau_syn = float(model.tau_mem), float(model.tau_syn)
    full = lambda x: np.full(n, float(x), dtype=np.float64)  # noqa: E731
    r = conv.r(tau_mem)
    common = dict(
        tau_syn=full(conv.time(tau_syn)),
        tau_mem=full(conv.time(tau_mem)),
        r=full(r),
        v_leak=full(0.0),
        w_in=full(tau_syn / conv.dt_ms),
    )
    if model.spiking:
        threshold = float(model.threshold if theta is None else theta) * r
        return nir.CubaLIF(v_threshold=full(threshold), v_reset=full(0.0), **common)
    if readout_as == "cubalif":
        return nir.CubaLIF(v_threshold=full(NON_SPIKING_THRESHOLD), v_reset=full(0.0), **common)
    return nir.CubaLI(**common)


def _simulated_delays(d: np.ndarray, mode: str, dt: float) -> np.ndarray:
    """Delays (ms) as the engine applies them: whole steps in round mode."""
    d = np.asarray(d, dtype=np.float64)
    return np.rint(d / dt) * dt if mode == "round" else d
