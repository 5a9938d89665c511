"""NIR graph -> EventpropNet.

Supported nodes: Input, Output, Linear, Affine (zero bias), Delay, CubaLIF (hidden layers; as the
readout also a never-firing one, threshold >= 1e30) and CubaLI (readout). The graph must be an
eventkit network: Input -> hidden layers in a chain (each optionally recurrent) -> one readout
population -> Output; a connection is a Linear, or branches ``pre -> Delay -> Linear`` summed at
its target. Per-neuron gains that eventkit's per-population models do not have (``w_in``, ``r``,
``v_threshold`` differing between the neurons of a population) are folded exactly into the
incoming weights; time constants must be uniform per population, ``v_leak`` and ``v_reset`` 0.

Units: the graph metadata written by :mod:`eventkit_nir.export` (``eventkit.ms_per_unit``) when
present, else seconds. A spike adds ``dt / tau_syn * w_in * w`` to the synaptic current, dt being
the run's step (the importers' convention, :mod:`eventkit_nir.conventions`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .conventions import NON_SPIKING_THRESHOLD, snap

SUPPORTED = ("Input", "Output", "Linear", "Affine", "Delay", "CubaLIF", "CubaLI")


def read_nir(path: str | Path):
    """``nir.read(path)`` with one-line errors for a missing, corrupt or inconsistent file."""
    import nir

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    try:
        return nir.read(str(path))
    except Exception as exc:  # h5py/nir raise many types for a damaged or foreign file
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ValueError(
            f"{path} is not a readable NIR file ({type(exc).__name__}: {first}). "
            "Fix: write it with nir.write (e.g. target=nir)"
        ) from None


def network_from_nir(
    graph: Any, *, readout: Any = None, dt: float | None = None, n_steps: int | None = None, **net_options
) -> Any:
    """An :class:`eventkit.engine.EventpropNet` simulating ``graph`` (a ``nir.NIRGraph`` or a
    path) at ``dt`` ms for ``n_steps`` steps (defaults: the graph's eventkit metadata). Raises
    ValueError (one line, naming the node) for graphs outside the supported shape."""
    import torch

    from eventkit.engine import LI, LIF, Delay, EventpropNet, ExpWeightedMeanV

    if isinstance(graph, (str, Path)):
        graph = read_nir(graph)
    meta = dict((graph.metadata or {}).get("eventkit") or {})
    ms_per_unit = float(meta.get("ms_per_unit", 1000.0))
    dt = float(dt if dt is not None else meta.get("dt_ms", 1.0))
    n_steps = int(n_steps if n_steps is not None else meta.get("n_steps", 1000))
    dt_file = dt / ms_per_unit
    g = _Graph(graph)
    chain = g.chain()  # [(pop name, ff conn, rec conn or None)], readout last
    populations = []
    for k, (name, _, _) in enumerate(chain):
        node = graph.nodes[name]
        last = k == len(chain) - 1
        populations.append(_population(name, node, last, ms_per_unit, dt_file))
    hidden = populations[:-1]
    out = populations[-1]
    delays, weights, delay_values = {}, {}, {}
    delay_meta = dict(meta.get("delays") or {})
    conn_names = []
    for k, (name, ff, rec) in enumerate(chain):
        is_out = k == len(chain) - 1
        for kind, conn in (("out" if is_out else "ff", ff), ("rec", rec)):
            if conn is None:
                continue
            cname = "out" if kind == "out" else f"{kind}{k}"
            w, d = conn.combine(populations[k]["size"], g.size(conn.pre), ms_per_unit)
            weights[cname] = w * populations[k]["gain"][:, None]
            conn_names.append(cname)
            if d is not None:
                delay_values[cname] = d
                spec = dict(delay_meta.get(cname) or {})
                whole = np.allclose(d / dt, np.rint(d / dt), atol=1e-9)
                mode = str(spec.get("mode", "round" if whole else "exact"))
                mx = float(spec.get("max_ms", float(d.max())))
                if d.max() > mx * (1 + 1e-9):
                    raise ValueError(
                        f"connection {cname}: a delay of {d.max():g} ms exceeds its " f"recorded maximum {mx:g} ms"
                    )
                delays[cname] = Delay(max=mx, learn=str(spec.get("learn", "true")) == "true", mode=mode)
    neurons = [LIF(tau_mem=p["tau_mem"], tau_syn=p["tau_syn"], threshold=p["theta"]) for p in hidden]
    if out["spiking"]:
        output = LIF(tau_mem=out["tau_mem"], tau_syn=out["tau_syn"], threshold=out["theta"])
    else:
        output = LI(tau_mem=out["tau_mem"], tau_syn=out["tau_syn"])
    try:
        net = EventpropNet(
            n_in=g.size("input"),
            n_out=out["size"],
            hidden=[p["size"] for p in hidden],
            recurrent=[rec is not None for _, _, rec in chain[:-1]],
            neuron=neurons,
            output=output,
            readout=readout if readout is not None else ExpWeightedMeanV(),
            dt=dt,
            n_steps=n_steps,
            delays=delays,
            **net_options,
        )
    except ValueError as exc:
        raise ValueError(f"the graph cannot run in eventkit: {exc}") from None
    with torch.no_grad():
        for cname in conn_names:
            param = getattr(net, cname)
            param.copy_(torch.as_tensor(weights[cname], dtype=param.dtype))
        for cname, d in delay_values.items():
            param = getattr(net, f"{cname}_delay")
            param.copy_(torch.as_tensor(d, dtype=param.dtype))
    return net


# --------------------------------------------------------------------------- internals
def _population(name: str, node: Any, is_readout: bool, ms_per_unit: float, dt_file: float) -> dict:
    """Time constants (ms), threshold and the per-neuron gain to fold into incoming weights."""
    import nir

    kind = type(node).__name__
    tau_syn = np.atleast_1d(np.asarray(node.tau_syn, dtype=np.float64))
    tau_mem = np.atleast_1d(np.asarray(node.tau_mem, dtype=np.float64))
    n = tau_mem.size
    arr = lambda x: np.broadcast_to(np.asarray(1.0 if x is None else x, dtype=np.float64), (n,))  # noqa: E731
    r, w_in, v_leak = arr(node.r), arr(node.w_in), arr(node.v_leak)
    for what, values in (("tau_syn", tau_syn), ("tau_mem", tau_mem)):
        if values.size != n:
            raise ValueError(f"node {name!r} ({kind}): {what} has {values.size} entries, tau_mem {n}")
        if not np.allclose(values, values[0], rtol=1e-9, atol=0):
            raise ValueError(
                f"node {name!r} ({kind}): {what} differs between neurons "
                f"({values.min():g}..{values.max():g}); eventkit populations share one "
                "time constant. Fix: export with a uniform time constant per layer"
            )
        if not values[0] > 0:
            raise ValueError(f"node {name!r} ({kind}): {what} must be > 0, got {values[0]:g}")
    if not np.allclose(v_leak, 0.0):
        raise ValueError(
            f"node {name!r} ({kind}): v_leak must be 0 (eventkit neurons have no "
            f"leak potential), got {v_leak.max():g}"
        )
    spiking = isinstance(node, nir.CubaLIF)
    theta_j = np.ones(n)
    if spiking:
        theta_j = arr(node.v_threshold)
        v_reset = None if node.v_reset is None else arr(node.v_reset)
        if np.all(theta_j >= NON_SPIKING_THRESHOLD) and is_readout:
            spiking, theta_j = False, np.ones(n)
        elif not np.all(theta_j > 0):
            raise ValueError(f"node {name!r} (CubaLIF): v_threshold must be > 0")
        elif v_reset is not None and not np.allclose(v_reset, 0.0):
            raise ValueError(
                f"node {name!r} (CubaLIF): v_reset must be 0 (eventkit resets to 0), " f"got {v_reset.max():g}"
            )
    if not is_readout and not spiking:
        raise ValueError(f"node {name!r} ({kind}): a hidden layer must spike (CubaLIF)")
    # the voltage per unit weight: r * (jump per spike w_in dt / tau_syn); neuron 0's is the unit
    per_unit = r * w_in * dt_file / tau_syn[0]
    if not np.all(per_unit > 0):
        raise ValueError(f"node {name!r} ({kind}): r and w_in must be > 0")
    # neuron j fires when (sum of w K) * per_unit_j > theta_j: in neuron 0's units that is
    # weights times gain_j against the threshold theta_0 / per_unit_0
    scale = per_unit / theta_j
    return dict(
        size=n,
        tau_mem=snap(tau_mem[0] * ms_per_unit),
        tau_syn=snap(tau_syn[0] * ms_per_unit),
        theta=float(theta_j[0] / per_unit[0]),
        gain=scale / scale[0],
        spiking=spiking,
    )


class _Connection:
    """The branches (``pre -> [Delay] -> Linear``) from one population into another."""

    def __init__(self, pre: str):
        self.pre = pre
        self.branches: list[tuple[str, np.ndarray, np.ndarray | None]] = []  # (linear, W, delay per pre)

    def combine(self, n_post: int, n_pre: int, ms_per_unit: float) -> tuple[np.ndarray, np.ndarray | None]:
        """(weights (n_post, n_pre), per-synapse delays in ms or None without Delay nodes)."""
        delayed = any(delay is not None for _, _, delay in self.branches)
        w = np.zeros((n_post, n_pre))
        d = np.full((n_post, n_pre), np.nan)
        # a synapse of weight 0 in every branch takes the smallest delay offered (it does not act)
        order = sorted(self.branches, key=lambda br: -1.0 if br[2] is None else float(np.min(br[2])))
        for lname, wb, delay in order:
            if wb.shape != (n_post, n_pre):
                raise ValueError(
                    f"node {lname!r}: weight shape {wb.shape} does not connect "
                    f"{self.pre!r} ({n_pre} neurons) to a population of {n_post}"
                )
            db = np.broadcast_to(np.zeros(n_pre) if delay is None else delay * ms_per_unit, (n_post, n_pre))
            active = wb != 0
            if np.any(active & (w != 0) & (d != db)):
                raise ValueError(
                    f"node {lname!r}: a synapse from {self.pre!r} has two different "
                    "delays (in two branches); eventkit holds one delay per synapse"
                )
            d = np.where(active | np.isnan(d), db, d)
            w = w + wb
        return w, (d if delayed else None)


class _Graph:
    """A NIR graph checked against eventkit's layered shape."""

    def __init__(self, graph: Any):
        import nir

        self.graph = graph
        self.nodes = dict(graph.nodes)
        for name, node in self.nodes.items():
            kind = type(node).__name__
            if kind not in SUPPORTED:
                raise ValueError(
                    f"node {name!r} is a {kind}, which eventkit cannot simulate; " f"supported: {', '.join(SUPPORTED)}"
                )
            if isinstance(node, nir.Affine) and node.bias is not None and np.any(np.asarray(node.bias) != 0):
                raise ValueError(
                    f"node {name!r} (Affine) has a nonzero bias, which eventkit "
                    "connections do not have. Fix: export it as a Linear"
                )
        self.parents: dict[str, list[str]] = {n: [] for n in self.nodes}
        self.children: dict[str, list[str]] = {n: [] for n in self.nodes}
        for a, b in graph.edges:
            for end in (a, b):
                if end not in self.nodes:
                    raise ValueError(f"edge ({a!r}, {b!r}) names a node {end!r} that the graph does not have")
            self.children[a].append(b)
            self.parents[b].append(a)
        inputs = [n for n, v in self.nodes.items() if isinstance(v, nir.Input)]
        outputs = [n for n, v in self.nodes.items() if isinstance(v, nir.Output)]
        if len(inputs) != 1 or len(outputs) != 1:
            raise ValueError(
                f"the graph needs one Input and one Output node, it has {len(inputs)} " f"and {len(outputs)}"
            )
        self.input, self.output = inputs[0], outputs[0]

    def is_population(self, name: str) -> bool:
        import nir

        return isinstance(self.nodes[name], (nir.CubaLIF, nir.CubaLI, nir.Input))

    def size(self, name: str) -> int:
        import nir

        node = self.nodes[name]
        if isinstance(node, nir.Input):
            shape = np.asarray(next(iter(node.input_type.values()))).reshape(-1)
            if shape.size != 1:
                raise ValueError(
                    f"node {name!r} (Input): eventkit inputs are flat channel vectors, " f"got shape {shape.tolist()}"
                )
            return int(shape[0])
        return int(np.atleast_1d(np.asarray(node.tau_mem)).size)

    def incoming(self, post: str) -> dict[str, _Connection]:
        """The connections into population ``post``, by presynaptic population."""
        import nir

        conns: dict[str, _Connection] = {}
        for lin in self.parents[post]:
            node = self.nodes[lin]
            if not isinstance(node, (nir.Linear, nir.Affine)):
                raise ValueError(
                    f"node {post!r} receives from {lin!r} ({type(node).__name__}); eventkit "
                    "populations receive through Linear nodes"
                )
            srcs = self.parents[lin]
            if len(srcs) != 1:
                raise ValueError(f"node {lin!r} (Linear) has {len(srcs)} inputs; eventkit connections have one")
            src, delay = srcs[0], None
            if isinstance(self.nodes[src], nir.Delay):
                delay = np.atleast_1d(np.asarray(self.nodes[src].delay, dtype=np.float64))
                if len(self.parents[src]) != 1:
                    raise ValueError(f"node {src!r} (Delay) has {len(self.parents[src])} inputs; expected one")
                src = self.parents[src][0]
                if np.any(delay < 0):
                    raise ValueError(f"node {srcs[0]!r} (Delay): delays must be >= 0")
            if not self.is_population(src):
                raise ValueError(
                    f"node {lin!r} is fed by {src!r} ({type(self.nodes[src]).__name__}); "
                    "eventkit connections start at the Input or a neuron population"
                )
            if delay is not None and delay.size not in (1, self.size(src)):
                raise ValueError(
                    f"node {srcs[0]!r} (Delay) has {delay.size} delays for " f"{self.size(src)} neurons of {src!r}"
                )
            if delay is not None and delay.size == 1:
                delay = np.full(self.size(src), float(delay[0]))
            w = np.asarray(node.weight, dtype=np.float64)
            if w.ndim != 2:
                raise ValueError(f"node {lin!r}: weight must be a matrix, got shape {w.shape}")
            conns.setdefault(src, _Connection(src)).branches.append((lin, w, delay))
        return conns

    def chain(self) -> list[tuple[str, _Connection, _Connection | None]]:
        """Populations from the first hidden layer to the readout, each with its feed-forward
        and recurrent connection."""
        feeds = self.parents[self.output]
        if len(feeds) != 1 or not self.is_population(feeds[0]) or feeds[0] == self.input:
            raise ValueError(
                f"the Output node {self.output!r} must be fed by one neuron population "
                f"(CubaLI or CubaLIF), it is fed by {feeds}"
            )
        readout = feeds[0]
        order: list[tuple[str, _Connection, _Connection | None]] = []
        post, seen = readout, set()
        while post != self.input:
            if post in seen:
                raise ValueError(
                    f"node {post!r} is reached twice walking back from the Output; "
                    "eventkit networks are a chain of layers"
                )
            seen.add(post)
            conns = self.incoming(post)
            rec = conns.pop(post, None)
            if len(conns) != 1:
                raise ValueError(
                    f"node {post!r} receives from {sorted(conns) or 'no population'}; "
                    "eventkit layers receive from exactly one earlier layer (plus themselves)"
                )
            ((pre, ff),) = conns.items()
            if post == readout and rec is not None:
                raise ValueError(f"the readout {post!r} is recurrent, which eventkit readouts are not")
            order.append((post, ff, rec))
            post = pre
        order.reverse()
        used = {self.input, self.output}
        for post, ff, rec in order:
            used.add(post)
            for conn in (ff, rec):
                for lin, _, _ in conn.branches if conn else []:
                    used.add(lin)
                    used.update(self.parents[lin])
        unused = sorted(set(self.nodes) - used)
        if unused:
            raise ValueError(
                f"node {unused[0]!r} is not on the path Input -> layers -> Output; "
                "eventkit networks are a chain of layers"
            )
        return order
