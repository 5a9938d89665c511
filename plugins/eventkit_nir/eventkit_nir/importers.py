"""Run an exported graph in the released importers (Norse, snnTorch) on a SpikeData batch, for
agreement checks: hidden spike counts and the readout voltage, as the engine reports them.

Both importers step the graph with forward Euler, one call per grid step, the input being the
number of spikes of each channel in that step.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch


class ImporterRun(NamedTuple):
    counts: np.ndarray  # [B, n_hidden_total] spikes per hidden neuron per sample
    trace: np.ndarray  # [B, T, n_out] readout voltage after each step, in the file's v units


def dense_input(data) -> torch.Tensor:
    """[T, B, n_in] spike counts per step and channel."""
    x = np.zeros((data.n_steps, len(data), data.n_channels), dtype=np.float32)
    sample = np.repeat(np.arange(len(data)), np.diff(data.offsets))
    np.add.at(x, (data.steps, sample, data.channels), 1.0)
    return torch.from_numpy(x)


def _hidden_names(graph) -> list[str]:
    return sorted((n for n in graph.nodes if n.startswith("hidden")), key=lambda n: int(n[6:]))


def run_norse(graph: Any, data, dt: float) -> ImporterRun:
    """``norse.torch.from_nir(graph, dt=dt)`` (dt in the file's time unit) stepped over ``data``.
    The readout must be a CubaLIF (Norse 1.1.0 drops LI/CubaLI nodes)."""
    import norse.torch

    model = norse.torch.from_nir(graph, dt=dt)
    hidden = _hidden_names(graph)
    x = dense_input(data)
    counts = [torch.zeros(len(data), graph.nodes[h].tau_mem.size) for h in hidden]
    trace, state = [], None
    with torch.no_grad():
        for t in range(x.shape[0]):
            _, state = model(x[t], state)
            for k, h in enumerate(hidden):
                counts[k] += state.cache[h]
            trace.append(state.state["readout"][0][1].v.clone())  # ((synapse, lif),)
    return ImporterRun(torch.cat(counts, 1).numpy(), torch.stack(trace, 1).numpy())


def run_snntorch(graph: Any, data, allow_recurrent: bool = False) -> ImporterRun:
    """``snntorch.import_nir.import_from_nir(graph)`` stepped over ``data`` (snnTorch 1.0.0 runs
    at its own dt of 1e-4: export with ``convention="snntorch"``). The readout must be a CubaLIF.
    A recurrent graph is refused unless ``allow_recurrent``: snnTorch 1.0.0 loads it but
    simulates it wrongly (see the README), and the hidden counts of its recurrent subgraph
    modules are not read here (returned as zeros)."""
    if not allow_recurrent and _cycles(graph):
        raise ValueError(
            "snnTorch 1.0.0 does not simulate recurrent NIR graphs correctly; " "use run_norse for a recurrent network"
        )
    import snntorch
    from snntorch.import_nir import import_from_nir

    import contextlib
    import copy
    import io

    with contextlib.redirect_stdout(io.StringIO()):  # the importer prints its progress
        model = import_from_nir(copy.deepcopy(graph))  # it rewrites recurrent nodes in place
    mods = dict(model.named_modules())
    hidden = _hidden_names(graph)
    for mod in mods.values():  # fresh state for this batch (shape mismatch -> zeros)
        if isinstance(mod, snntorch.SpikingNeuron):
            mod.syn, mod.mem = torch.zeros(0), torch.zeros(0)
    x = dense_input(data)
    spikes: dict[str, torch.Tensor] = {}
    hooks = [
        mods[h].register_forward_hook(lambda m, i, o, h=h: spikes.__setitem__(h, o[0] if isinstance(o, tuple) else o))
        for h in hidden
    ]
    counts = [torch.zeros(len(data), graph.nodes[h].tau_mem.size) for h in hidden]
    trace, state = [], None
    try:
        with torch.no_grad():
            for t in range(x.shape[0]):
                _, state = model(x[t], state)  # the state holds recurrent subgraphs' neurons
                for k, h in enumerate(hidden):
                    if torch.is_tensor(spikes.get(h)):
                        counts[k] += spikes[h]
                trace.append(mods["readout"].mem.clone())
    finally:
        for hook in hooks:
            hook.remove()
    return ImporterRun(torch.cat(counts, 1).numpy(), torch.stack(trace, 1).numpy())


def _cycles(graph: Any) -> list[tuple[str, str]]:
    """(population, population) for each two-edge cycle population -> Linear -> population."""
    edges = set(graph.edges)
    return [(a, c) for a, b in edges for b2, c in edges if b2 == b and (b, a) in edges and c == a]


def predictions_from_trace(net: Any, trace: np.ndarray) -> np.ndarray:
    """The class ``net``'s readout picks from a voltage trace [B, T, n_out]."""
    tr = torch.as_tensor(trace, dtype=torch.float32)
    t_first = torch.full(tr.shape[::2], net.n_steps * net.dt)
    return np.asarray(net.predict(net.readout(tr, t_first, net.dt)))
