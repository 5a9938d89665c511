"""EventpropNet -> NIR graph.

Node names: ``input``; one ``hidden<k>`` CubaLIF per hidden layer; ``readout`` (CubaLI, or a
CubaLIF); ``output``. A connection without delays is one Linear named like the eventkit
connection (``ff0``, ``rec0``, ``out``; weight (n_post, n_pre)); recurrence is the cycle
``hidden<k> -> rec<k> -> hidden<k>``.

A connection with per-synapse delays is written per neuron on its smaller side, so that the file
grows with the number of synapses, never with the number of distinct delay values:

* fewer presynaptic neurons (n_pre <= n_post): for each presynaptic neuron i,
  ``pre -> <name>_pre<i>`` (Linear 1 x n_pre, one-hot: picks neuron i)
  ``-> <name>_w<i>`` (Linear n_post x 1: the weights of i's synapses)
  ``-> <name>_d<i>`` (Delay, n_post entries: the delays of i's synapses) ``-> post``;
* fewer postsynaptic neurons: for each postsynaptic neuron j,
  ``pre -> <name>_d<j>`` (Delay, n_pre entries: the delays of j's synapses)
  ``-> <name>_w<j>`` (Linear 1 x n_pre: j's weights)
  ``-> <name>_post<j>`` (Linear n_post x 1, one-hot: delivers to neuron j) ``-> post``.

Summed at the target they are the delayed connection, exactly: every weight and every delay is
stored once, and the one-hot factors are 1. That is 3 min(n_pre, n_post) nodes holding
2 n_pre n_post + min(n_pre, n_post)^2 numbers. Delays are written as the engine simulates them:
``mode=round`` ones as whole steps. A synapse of weight 0 has no effect, and reads back with the
connection's smallest delay.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .conventions import NON_SPIKING_THRESHOLD, READOUT_NODES, Convention

HIDDEN_MODELS = ("lif",)
OUTPUT_MODELS = ("li", "lif")


def to_nir(net: Any, *, convention: str = "seconds", readout_as: str = "cubali"):
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
    # every hidden neuron's own time constants (learned per neuron, per layer, or the model's)
    per_neuron = net.time_constants() if hasattr(net, "time_constants") else []
    for pop in topo.populations:
        theta = thresholds.get(pop.index)
        taus = per_neuron[pop.index] if pop is not topo.output and pop.index < len(per_neuron) else {}
        nodes[node_name(pop)] = _neuron_node(pop.model, pop.size, conv, readout_as, theta, taus)
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
        branch_nodes, branch_edges = _delayed_branches(conn.name, w, d / conv.ms_per_unit)
        nodes.update(branch_nodes)
        edges += [(pre if a is None else a, post if b is None else b) for a, b in branch_edges]
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


def _neuron_node(model, n: int, conv: Convention, readout_as: str, theta: float | None, taus: dict):
    """The CubaLIF / CubaLI node of a population of ``n`` neurons of ``model``; ``taus`` may give
    each neuron's own ``tau_mem`` / ``tau_syn`` (ms), which CubaLIF holds per neuron."""
    import nir

    tau_mem = np.asarray(taus.get("tau_mem", float(model.tau_mem)), dtype=np.float64)
    tau_syn = np.asarray(taus.get("tau_syn", float(model.tau_syn)), dtype=np.float64)
    full = lambda x: np.broadcast_to(np.asarray(x, dtype=np.float64), (n,)).copy()  # noqa: E731
    r = conv.r(tau_mem)
    common = dict(
        tau_syn=full(conv.time(tau_syn)),
        tau_mem=full(conv.time(tau_mem)),
        r=full(r),
        v_leak=full(0.0),
        w_in=full(tau_syn / conv.dt_ms),
    )
    if model.spiking:
        threshold = float(model.threshold if theta is None else theta) * full(r)
        return nir.CubaLIF(v_threshold=full(threshold), v_reset=full(0.0), **common)
    if readout_as == "cubalif":
        return nir.CubaLIF(v_threshold=full(NON_SPIKING_THRESHOLD), v_reset=full(0.0), **common)
    return nir.CubaLI(**common)


def _simulated_delays(d: np.ndarray, mode: str, dt: float) -> np.ndarray:
    """Delays (ms) as the engine applies them: whole steps in round mode."""
    d = np.asarray(d, dtype=np.float64)
    return np.rint(d / dt) * dt if mode == "round" else d


def _delayed_branches(name: str, w: np.ndarray, d: np.ndarray) -> tuple[dict, list]:
    """Nodes and edges of the per-neuron branches of a delayed connection (weights w and delays
    d in file units, both (n_post, n_pre)); None in an edge stands for the pre/post population."""
    import nir

    n_post, n_pre = w.shape
    nodes: dict = {}
    edges: list = []
    if n_pre <= n_post:
        for i in range(n_pre):
            pick = np.zeros((1, n_pre))
            pick[0, i] = 1.0
            a, b, c = f"{name}_pre{i}", f"{name}_w{i}", f"{name}_d{i}"
            nodes[a], nodes[b], nodes[c] = (
                nir.Linear(pick),
                nir.Linear(w[:, i : i + 1].copy()),
                nir.Delay(d[:, i].copy()),
            )
            edges += [(None, a), (a, b), (b, c), (c, None)]
    else:
        for j in range(n_post):
            put = np.zeros((n_post, 1))
            put[j, 0] = 1.0
            a, b, c = f"{name}_d{j}", f"{name}_w{j}", f"{name}_post{j}"
            nodes[a], nodes[b], nodes[c] = (
                nir.Delay(d[j, :].copy()),
                nir.Linear(w[j : j + 1, :].copy()),
                nir.Linear(put),
            )
            edges += [(None, a), (a, b), (b, c), (c, None)]
    return nodes, edges
