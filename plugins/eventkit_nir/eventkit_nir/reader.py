"""NIR graph -> EventpropNet.

Any graph whose wiring (:mod:`eventkit_nir.wiring`) is an eventkit network is read: one Input ->
hidden CubaLIF layers in a chain (each optionally recurrent) -> one readout population (CubaLI, a
CubaLIF, or a never-firing CubaLIF with threshold >= 1e30) -> one Output, node names free, nested
subgraphs expanded, connections any composition of Linear / Affine (zero bias) / Scale / Delay /
Flatten nodes. Per-neuron gains that eventkit's per-population models do not have (``w_in``,
``r``, ``v_threshold`` differing between the neurons of a population) are folded exactly into the
incoming weights; time constants must be uniform per population, ``v_leak`` and ``v_reset`` 0.

Units: the graph metadata written by :mod:`eventkit_nir.export` (``eventkit.ms_per_unit``) when
present, else seconds. A spike adds ``dt_file / tau_syn * w_in * w`` to the synaptic current
(the importers' convention, :mod:`eventkit_nir.conventions`), ``dt_file`` being the step the file
was written for: its metadata's, else the one its neurons state (``w_in = tau_syn / dt``,
``r = tau_mem / dt``, as eventkit, snnTorch and Lava-DL write), else the run's step.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .conventions import NON_SPIKING_THRESHOLD, snap
from .wiring import Wiring, array, end_size, wiring


class NirImportWarning(UserWarning):
    """The imported network runs, but not as faithfully as the file describes it."""


@dataclass
class Imported:
    net: Any
    summary: str  # one line: the file's populations as they run here
    notes: list[str]  # one line each: what does not run faithfully at this dt


def read_nir(path: str | Path):
    """``nir.read(path)`` with one-line errors for a missing or corrupt file. A file that nir's
    own type check refuses (a node nir cannot infer shapes for, such as a Conv2d fed a vector) is
    read without it, so that the reader can name the node it cannot use."""
    import nir

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    try:
        return nir.read(str(path))
    except Exception as exc:  # h5py/nir raise many types for a damaged or foreign file
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        try:
            return nir.read(str(path), type_check=False)
        except Exception:
            raise ValueError(
                f"{path} is not a readable NIR file ({type(exc).__name__}: {first}). "
                "Fix: write it with nir.write (e.g. target=nir)"
            ) from None


def network_from_nir(
    graph: Any, *, readout: Any = None, dt: float | None = None, n_steps: int | None = None, **net_options
) -> Any:
    """An :class:`eventkit.engine.EventpropNet` simulating ``graph`` (a ``nir.NIRGraph`` or a
    path) at ``dt`` ms for ``n_steps`` steps (defaults: the graph's eventkit metadata, else the
    step its neurons state). Raises ValueError (one line, naming the node) for graphs eventkit
    cannot run; warns (:class:`NirImportWarning`, one line each) where the run's dt cannot
    reproduce the file faithfully."""
    imported = import_nir(graph, readout=readout, dt=dt, n_steps=n_steps, **net_options)
    for note in imported.notes:
        warnings.warn(note, NirImportWarning, stacklevel=2)
    return imported.net


def import_nir(
    graph: Any, *, readout: Any = None, dt: float | None = None, n_steps: int | None = None, **net_options
) -> Imported:
    """:func:`network_from_nir`, returning the network with a one-line summary and the notes."""
    import torch

    from eventkit.plugin import LI, LIF, Delay, EventpropNet, ExpWeightedMeanV

    if isinstance(graph, (str, Path)):
        graph = read_nir(graph)
    meta = dict((graph.metadata or {}).get("eventkit") or {})
    ms_per_unit = float(meta.get("ms_per_unit", 1000.0))
    w = wiring(graph)
    chain = _chain(w)  # [(population, ff connection, rec connection or None)], readout last
    stated = _stated_dt_ms(w, [name for name, _, _ in chain], ms_per_unit)
    file_dt = float(meta["dt_ms"]) if "dt_ms" in meta else stated
    run_dt = float(dt if dt is not None else (file_dt if file_dt is not None else 1.0))
    n_steps = int(n_steps if n_steps is not None else meta.get("n_steps", 1000))
    _refuse_norse_time_constants(w, [name for name, _, _ in chain], ms_per_unit, run_dt, meta)
    spike_dt = file_dt if file_dt is not None else run_dt  # the step a spike's w_in refers to
    populations = [
        _population(name, w, k == len(chain) - 1, ms_per_unit, spike_dt / ms_per_unit)
        for k, (name, _, _) in enumerate(chain)
    ]
    hidden, out = populations[:-1], populations[-1]
    delays, weights, delay_values = {}, {}, {}
    delay_meta = dict(meta.get("delays") or {})
    for k, (name, ff, rec) in enumerate(chain):
        is_out = k == len(chain) - 1
        for kind, conn in (("out" if is_out else "ff", ff), ("rec", rec)):
            if conn is None:
                continue
            cname = "out" if kind == "out" else f"{kind}{k}"
            weights[cname] = conn.weight * populations[k]["gain"][:, None]
            if conn.delay is None:
                continue
            d = conn.delay * ms_per_unit
            delay_values[cname] = d
            spec = dict(delay_meta.get(cname) or {})
            whole = np.allclose(d / run_dt, np.rint(d / run_dt), atol=1e-9)
            mode = str(spec.get("mode", "round" if whole else "exact"))
            mx = float(spec.get("max_ms", float(d.max())))
            if d.max() > mx * (1 + 1e-9):
                raise ValueError(
                    f"connection {cname}: a delay of {d.max():g} ms exceeds its recorded maximum {mx:g} ms. "
                    f"Fix: set metadata eventkit.delays.{cname}.max_ms >= {d.max():g} in the file"
                )
            delays[cname] = Delay(max=mx, learn=str(spec.get("learn", "true")) == "true", mode=mode)
    neurons = [LIF(tau_mem=p["tau_mem"], tau_syn=p["tau_syn"], threshold=p["theta"]) for p in hidden]
    per_neuron = _per_neuron_options(hidden)
    if out["spiking"]:
        output = LIF(tau_mem=out["tau_mem"], tau_syn=out["tau_syn"], threshold=out["theta"])
    else:
        output = LI(tau_mem=out["tau_mem"], tau_syn=out["tau_syn"])
    try:
        net = EventpropNet(
            n_in=w.sizes[w.input],
            n_out=out["size"],
            hidden=[p["size"] for p in hidden],
            recurrent=[rec is not None for _, _, rec in chain[:-1]],
            neuron=neurons,
            output=output,
            readout=readout if readout is not None else ExpWeightedMeanV(),
            dt=run_dt,
            n_steps=n_steps,
            delays=delays,
            **per_neuron,
            **net_options,
        )
    except ValueError as exc:
        raise ValueError(f"the graph cannot run in eventkit: {exc}") from None
    with torch.no_grad():
        for cname, value in weights.items():
            param = getattr(net, cname)
            param.copy_(torch.as_tensor(value, dtype=param.dtype))
        for cname, d in delay_values.items():
            param = getattr(net, f"{cname}_delay")
            param.copy_(torch.as_tensor(d, dtype=param.dtype))
        for k, p in enumerate(hidden):  # every neuron's time constants (tau_per_neuron)
            for key in per_neuron.get("learn_tau", {}):
                value = p["per_neuron"].get(key, np.full(p["size"], p[key]))
                param = getattr(net, f"{key}{k}")
                param.copy_(torch.as_tensor(value, dtype=param.dtype))
    notes = _dt_notes(file_dt, run_dt, populations, "metadata" if "dt_ms" in meta else "neurons")
    return Imported(net, _summary(w, chain, populations, net), notes)


def _per_neuron_options(hidden: list[dict]) -> dict:
    """EventpropNet options for hidden layers whose neurons have their own time constants: those
    constants learnable per neuron (``tau_per_neuron``), each within the range the file's values
    span, or {} where every layer has one value per constant."""
    keys = sorted({key for p in hidden for key in p["per_neuron"]})
    if not keys:
        return {}
    ranges = {}
    for key in keys:
        values = np.concatenate([p["per_neuron"].get(key, np.array([p[key]])) for p in hidden])
        ranges[key] = [float(values.min()), float(values.max())]
    return dict(learn_tau=ranges, tau_per_neuron=True)


# --------------------------------------------------------------------------- structure
def _chain(w: Wiring) -> list[tuple[str, Any, Any]]:
    """Populations from the first hidden layer to the readout, each with its feed-forward and
    recurrent connection."""
    feeds = [a for (a, b) in _edges_into(w, w.output)]
    if len(feeds) != 1 or feeds[0] not in w.sizes or feeds[0] == w.input:
        raise ValueError(
            f"the Output node {w.output!r} must be fed by one neuron population (CubaLI or CubaLIF), "
            f"it is fed by {feeds}. Fix: connect the readout population straight to the Output"
        )
    readout = feeds[0]
    if end_size(w.output, w.nodes[w.output]) != w.sizes[readout]:
        raise ValueError(
            f"the Output node {w.output!r} has {end_size(w.output, w.nodes[w.output])} entries, its readout "
            f"{readout!r} {w.sizes[readout]} neurons. Fix: give the Output the readout's size"
        )
    order = []
    post, seen = readout, set()
    while post != w.input:
        if post in seen:
            raise ValueError(
                f"node {post!r} is reached twice walking back from the Output; eventkit networks are a chain of "
                "layers. Fix: remove the connection that closes the loop between layers"
            )
        seen.add(post)
        into = {pre: c for (pre, p), c in w.connections.items() if p == post}
        rec = into.pop(post, None)
        if len(into) != 1:
            raise ValueError(
                f"node {post!r} receives from {sorted(into) or 'no population'}; eventkit layers "
                "receive from exactly one earlier layer (plus themselves). Fix: remove the extra (skip or "
                "backward) connection, or merge the layers it joins"
            )
        ((pre, ff),) = into.items()
        if post == readout and rec is not None:
            raise ValueError(
                f"the readout {post!r} is recurrent, which eventkit readouts are not. Fix: remove its "
                "recurrent connection (or add a recurrent hidden layer before it)"
            )
        order.append((post, ff, rec))
        post = pre
    order.reverse()
    on_chain = {w.input} | {name for name, _, _ in order}
    stray = sorted(set(w.sizes) - on_chain)
    if stray:
        raise ValueError(
            f"node {stray[0]!r} is not on the path Input -> layers -> Output; eventkit networks are a chain of "
            "layers. Fix: remove it or wire it into the chain"
        )
    for (pre, post), c in w.connections.items():
        if pre != post and not any(post == name and c is ff for name, ff, _ in order):
            raise ValueError(
                f"{pre!r} -> {post!r} (through {', '.join(map(repr, c.nodes)) or 'a direct edge'}) runs "
                "backwards or skips a layer; eventkit networks are a chain of layers. Fix: remove that connection"
            )
    return order


def _edges_into(w: Wiring, name: str) -> list[tuple[str, str]]:
    return [(a, b) for a, b in w.edges if b == name]


# --------------------------------------------------------------------------- neurons
def _params(w: Wiring, name: str) -> dict[str, np.ndarray]:
    """A population's parameters as float64 vectors of its size (scalars broadcast)."""
    node, n = w.nodes[name], w.sizes[name]
    out = {}
    for p, default in (("tau_syn", None), ("tau_mem", None), ("r", 1.0), ("w_in", 1.0), ("v_leak", 0.0)):
        value = getattr(node, p, None)
        out[p] = np.broadcast_to(array(default if value is None else value).reshape(-1), (n,)).astype(np.float64)
    if type(node).__name__ == "CubaLIF":
        out["v_threshold"] = np.broadcast_to(array(node.v_threshold).reshape(-1), (n,)).astype(np.float64)
        v_reset = getattr(node, "v_reset", None)
        out["v_reset"] = np.broadcast_to(array(0.0 if v_reset is None else v_reset).reshape(-1), (n,)).astype(
            np.float64
        )
    return out


def _population(name: str, w: Wiring, is_readout: bool, ms_per_unit: float, spike_dt: float) -> dict:
    """Time constants (ms), threshold and the per-neuron gain to fold into incoming weights;
    ``spike_dt`` is the step (file units) that a spike's ``w_in`` refers to."""
    kind = w.kind(name)
    prm = _params(w, name)
    n = w.sizes[name]
    for what in ("tau_syn", "tau_mem"):
        values = prm[what]
        if is_readout and not np.allclose(values, values[0], rtol=1e-6, atol=0):
            raise ValueError(
                f"node {name!r} ({kind}): {what} differs between neurons ({values.min():g}..{values.max():g}); "
                "eventkit's readout population has one time constant (hidden layers may have one per neuron). "
                "Fix: export the readout with a uniform time constant"
            )
        if not np.all(values > 0) or not np.all(np.isfinite(values)):
            raise ValueError(
                f"node {name!r} ({kind}): {what} must be finite and > 0, got {values.min():g}. "
                f"Fix: write {what} in seconds (or the unit of the file's eventkit metadata)"
            )
    if not np.allclose(prm["v_leak"], 0.0):
        raise ValueError(
            f"node {name!r} ({kind}): v_leak must be 0 (eventkit neurons have no leak potential), "
            f"got {prm['v_leak'].max():g}. Fix: export with v_leak = 0 (no bias current)"
        )
    spiking = kind == "CubaLIF"
    theta_j = np.ones(n)
    if spiking:
        theta_j = prm["v_threshold"]
        if np.all(theta_j >= NON_SPIKING_THRESHOLD) and is_readout:
            spiking, theta_j = False, np.ones(n)
        elif not np.all(theta_j > 0):
            raise ValueError(
                f"node {name!r} (CubaLIF): v_threshold must be > 0, got {theta_j.min():g}. "
                "Fix: export positive thresholds"
            )
        elif not np.allclose(prm["v_reset"], 0.0):
            raise ValueError(
                f"node {name!r} (CubaLIF): v_reset must be 0 (eventkit resets to 0), got {prm['v_reset'].max():g}. "
                "Fix: export with v_reset = 0 (snnTorch: reset_mechanism='zero')"
            )
    if not is_readout and not spiking:
        raise ValueError(
            f"node {name!r} ({kind}): a hidden layer must spike. Fix: write hidden layers as CubaLIF "
            "(a CubaLI or never-firing CubaLIF only as the readout)"
        )
    # the voltage per unit weight: r * (jump per spike w_in dt / tau_syn); neuron 0's is the unit
    per_unit = prm["r"] * prm["w_in"] * spike_dt / prm["tau_syn"]
    if not np.all(per_unit > 0):
        raise ValueError(f"node {name!r} ({kind}): r and w_in must be > 0. Fix: export positive r and w_in")
    # neuron j fires when (sum of w K) * per_unit_j > theta_j: in neuron 0's units that is
    # weights times gain_j against the threshold theta_0 / per_unit_0
    scale = per_unit / theta_j
    return dict(
        name=name,
        kind=kind,
        size=n,
        tau_mem=snap(prm["tau_mem"][0] * ms_per_unit),
        tau_syn=snap(prm["tau_syn"][0] * ms_per_unit),
        # each neuron's (ms), where they differ (a layer learned per neuron)
        per_neuron={
            key: np.array([snap(x) for x in prm[key] * ms_per_unit])
            for key in ("tau_mem", "tau_syn")
            if not np.allclose(prm[key], prm[key][0], rtol=1e-6, atol=0)
        },
        theta=float(theta_j[0] / per_unit[0]),
        gain=scale / scale[0],
        spiking=spiking,
    )


def _stated_dt_ms(w: Wiring, names: list[str], ms_per_unit: float) -> float | None:
    """The step the neurons state (``w_in = tau_syn / dt``, ``r = tau_mem / dt``, in ms, to 6
    significant digits), when every population that states one agrees; None when none does."""
    found = []
    for name in names:
        prm = _params(w, name)
        if not np.allclose(prm["w_in"], 1.0):
            found.append(prm["tau_syn"] / prm["w_in"])
        if not np.allclose(prm["r"], 1.0):
            found.append(prm["tau_mem"] / prm["r"])
    if not found:
        return None
    values = np.concatenate(found)
    if not (np.all(values > 0) and np.allclose(values, values[0], rtol=1e-5, atol=0)):
        return None
    # 6 significant digits: the parameters it comes from are often float32 (snnTorch, Norse)
    return float(f"{float(values[0]) * ms_per_unit:.6g}")


def _refuse_norse_time_constants(w: Wiring, names: list[str], ms_per_unit: float, run_dt: float, meta: dict) -> None:
    """Norse 1.1.0's ``to_nir`` writes ``tau = dt / tau_inv`` (a factor dt too small) with
    ``r = 1`` and ``w_in = 1``: such a file's time constants are far below any step."""
    if meta:
        return
    taus, plain = [], True
    for name in names:
        prm = _params(w, name)
        plain &= bool(np.allclose(prm["r"], 1.0) and np.allclose(prm["w_in"], 1.0))
        taus += [prm["tau_mem"].max() * ms_per_unit, prm["tau_syn"].max() * ms_per_unit]
    if plain and taus and max(taus) < run_dt:
        raise ValueError(
            f"every time constant is shorter than the run's step ({max(taus):.3g} ms at most, dt {run_dt:g} ms) "
            "and r = w_in = 1: this looks like a graph written by Norse 1.1.0's to_nir, which writes "
            "tau = dt / tau_inv (a factor dt too small). Fix: eventkit_nir.fix_norse(graph, dt=<the dt given "
            "to to_nir, default 0.001>) (or python -m eventkit_nir.norse_repair IN OUT --dt 0.001) and import that"
        )


def _dt_notes(file_dt: float | None, run_dt: float, populations: list[dict], source: str) -> list[str]:
    if file_dt is None or run_dt <= file_dt * (1 + 1e-9):
        return []
    tau = min(min(p["tau_mem"], p["tau_syn"], *(v.min() for v in p["per_neuron"].values())) for p in populations)
    times = run_dt / file_dt
    return [
        f"the file's neurons were made for a step of {file_dt:g} ms (stated by its {source}; time constants "
        f"down to {tau:g} ms): at this run's {run_dt:g} ms a neuron fires at most once per step where the "
        f"file's could fire up to {math.ceil(times - 1e-9)} times. Fix: dataset.dt={file_dt:g}"
    ]


def _summary(w: Wiring, chain: list, populations: list[dict], net: Any) -> str:
    parts = [f"Input {w.input!r} ({w.sizes[w.input]})"]
    for (name, _, rec), p in zip(chain, populations):
        rec_note = ", recurrent" if rec is not None else ""
        parts.append(f"{p['kind']} {name!r} ({p['size']}{rec_note})")
    readout = populations[-1]
    return (
        " -> ".join(parts) + f" -> Output {w.output!r}; readout {readout['kind']} {readout['name']!r} runs as "
        f"{net.output.name} (tau_mem {readout['tau_mem']:g} ms, tau_syn {readout['tau_syn']:g} ms)"
    )
