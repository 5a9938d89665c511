"""A NIR graph as populations and the weighted, delayed connections between them.

The graph is read by structure, not by node names: nested subgraphs are expanded (an edge into a
subgraph node feeds its Input, an edge out of it leaves its Output; inner nodes are named
``<subgraph>.<node>``), the Input and Output nodes are found by type, and every path of synaptic
nodes (Linear, Affine with zero bias, Scale, Delay, Flatten) from one population to another is
composed into one connection: synapse (j, i) gets the sum of the weights of its paths and the sum
of the delays along them. Any such wiring is accepted (one Linear; ``Delay -> Linear`` branches,
one per delay value; a one-hot fan-out ``Linear -> Linear -> Delay`` per presynaptic neuron, as
:mod:`eventkit_nir.export` writes; ...) as long as each synapse ends up with one delay. Populations
are the Input node and the CubaLIF / CubaLI nodes.

Every problem raises ValueError with one line naming the node(s).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

POPULATION_TYPES = ("CubaLIF", "CubaLI")
SYNAPTIC_TYPES = ("Linear", "Affine", "Scale", "Delay", "Flatten")
SUPPORTED = ("Input", "Output", *POPULATION_TYPES, *SYNAPTIC_TYPES, "NIRGraph")
#: node types without a synaptic current: what to use instead
CURRENT_BASED_HINT = {
    "LIF": "CubaLIF",
    "LI": "CubaLI",
    "IF": "CubaLIF",
    "I": "CubaLI",
}


def array(x: Any) -> np.ndarray:
    """A node parameter (numpy array, torch tensor, Python or numpy scalar) as float64 array."""
    if hasattr(x, "detach"):  # a torch tensor (Norse and snnTorch graphs hold them)
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


@dataclass
class Connection:
    """The synapses from population ``pre`` into population ``post``: weights (n_post, n_pre) and
    delays in file time units (n_post, n_pre), None when no path holds a Delay node."""

    pre: str
    post: str
    weight: np.ndarray
    delay: np.ndarray | None
    nodes: list[str] = field(default_factory=list)  # the synaptic nodes it was composed from


@dataclass
class Wiring:
    nodes: dict[str, Any]
    input: str
    output: str
    sizes: dict[str, int]  # per population (the Input included)
    connections: dict[tuple[str, str], Connection]
    edges: list[tuple[str, str]]

    def kind(self, name: str) -> str:
        return type(self.nodes[name]).__name__


def wiring(graph: Any) -> Wiring:
    """The populations and connections of ``graph`` (a ``nir.NIRGraph``)."""
    nodes, edges = _expand(dict(graph.nodes), list(graph.edges), "")
    _check_types(nodes)
    parents: dict[str, list[str]] = {n: [] for n in nodes}
    children: dict[str, list[str]] = {n: [] for n in nodes}
    for a, b in edges:
        for end in (a, b):
            if end not in nodes:
                raise ValueError(
                    f"edge ({a!r}, {b!r}) names a node {end!r} that the graph does not have. "
                    "Fix: add the node or correct the edge"
                )
        children[a].append(b)
        parents[b].append(a)
    inp, out = _ends(nodes, parents, children)
    sizes = _population_sizes(nodes, parents, children, inp)
    conns = _compose(nodes, parents, children, sizes)
    return Wiring(nodes, inp, out, sizes, conns, edges)


# --------------------------------------------------------------------------- structure
def _expand(nodes: dict[str, Any], edges: list, prefix: str) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """Nested NIRGraph nodes replaced by their inner nodes (``sub.inner``); edges into ``sub`` go
    to what its Input feeds, edges out of ``sub`` leave from what feeds its Output."""
    flat: dict[str, Any] = {}
    entry: dict[str, list[str]] = {}  # subgraph name -> inner nodes its Input feeds
    exit_: dict[str, list[str]] = {}  # subgraph name -> inner nodes feeding its Output
    inner_edges: list[tuple[str, str]] = []
    for name, node in nodes.items():
        full = f"{prefix}{name}"
        if type(node).__name__ != "NIRGraph":
            flat[full] = node
            continue
        sub_nodes, sub_edges = _expand(dict(node.nodes), list(node.edges), f"{full}.")
        ins = [n for n, v in sub_nodes.items() if type(v).__name__ == "Input"]
        outs = [n for n, v in sub_nodes.items() if type(v).__name__ == "Output"]
        if len(ins) != 1 or len(outs) != 1:
            raise ValueError(
                f"subgraph {full!r} has {len(ins)} Input and {len(outs)} Output nodes; a subgraph "
                "used as one node needs exactly one of each. Fix: give it one Input and one Output node"
            )
        entry[full] = [b for a, b in sub_edges if a == ins[0]]
        exit_[full] = [a for a, b in sub_edges if b == outs[0]]
        for n, v in sub_nodes.items():
            if n not in (ins[0], outs[0]):
                flat[n] = v
        inner_edges += [(a, b) for a, b in sub_edges if a != ins[0] and b != outs[0]]
    out_edges = list(inner_edges)
    for a, b in edges:
        a, b = f"{prefix}{a}", f"{prefix}{b}"
        for src in exit_.get(a, [a]):
            for dst in entry.get(b, [b]):
                out_edges.append((src, dst))
    return flat, out_edges


def _check_types(nodes: dict[str, Any]) -> None:
    for name, node in nodes.items():
        kind = type(node).__name__
        if kind not in SUPPORTED:
            hint = (
                f" Fix: write current-based neurons ({CURRENT_BASED_HINT[kind]}; snnTorch: snn.Synaptic, "
                "Norse: LIFCell)"
                if kind in CURRENT_BASED_HINT
                else ""
            )
            raise ValueError(
                f"node {name!r}: {kind} is not supported by eventkit's NIR reader (supported: "
                f"{', '.join(s for s in SUPPORTED if s != 'NIRGraph')}, and subgraphs of them).{hint}"
            )
        if kind == "Affine" and node.bias is not None and np.any(array(node.bias) != 0):
            raise ValueError(
                f"node {name!r} (Affine) has a nonzero bias, which eventkit connections do not have. "
                "Fix: export it as a Linear (bias=False)"
            )


def _ends(nodes: dict[str, Any], parents: dict, children: dict) -> tuple[str, str]:
    """The graph's one Input and one Output node; otherwise a message naming the dangling nodes."""
    inputs = [n for n, v in nodes.items() if type(v).__name__ == "Input"]
    outputs = [n for n, v in nodes.items() if type(v).__name__ == "Output"]
    # nodes nothing feeds / that feed nothing (nir.read adds Input/Output nodes at such ends)
    unfed = [n for n in nodes if not parents[n] and n not in inputs]
    unread = [n for n in nodes if not children[n] and n not in outputs]
    counts = []
    if len(inputs) != 1:
        counts.append(f"{len(inputs)} Input nodes ({_list_ends(inputs, children, 'feeds')})")
    if len(outputs) != 1:
        counts.append(f"{len(outputs)} Output nodes ({_list_ends(outputs, parents, 'fed by')})")
    problems = [f"it has {' and '.join(counts)}"] if counts else []
    if unfed:
        problems.append(f"nothing feeds {_names(unfed)}")
    if unread:
        problems.append(f"{_names(unread)} feed{'s' if len(unread) == 1 else ''} nothing")
    if problems:
        added = [n for n in inputs + outputs if _added_by_nir(n, nodes, parents, children)]
        # the dangling ends: nodes with no edge out (or read only by an Output nir added there,
        # ``output_X``), and nodes with no edge in (or fed only by an added Input ``input_X``)
        no_out = sorted(set(unread) | {n[len("output_") :] for n in added if n.startswith("output_")})
        no_in = sorted(set(unfed) | {n[len("input_") :] for n in added if n.startswith("input_")})
        note = (
            f"; {_names(added)} {'was' if len(added) == 1 else 'were'} added by nir at dangling "
            f"end{'s' if len(added) > 1 else ''}"
            if added
            else ""
        )
        missing = [f"out of {_names(no_out)}"] * bool(no_out) + [f"into {_names(no_in)}"] * bool(no_in)
        fix = (
            f"Fix: add the missing edges {' and '.join(missing)}"
            if missing
            else "Fix: give the graph one Input node and one Output node"
        )
        raise ValueError(
            f"the graph needs one Input and one Output node, and every node wired: {'; '.join(problems)}{note}. {fix}"
        )
    return inputs[0], outputs[0]


def _added_by_nir(name: str, nodes: dict, parents: dict, children: dict) -> bool:
    """An Input ``input_X`` feeding only X, or an Output ``output_X`` fed only by X: what
    ``NIRGraph.infer_types`` (run by ``nir.read``) adds at a node without incoming/outgoing edges."""
    kind = type(nodes[name]).__name__
    if kind == "Input" and name.startswith("input_"):
        return children[name] == [name[len("input_") :]] and len(parents[name[len("input_") :]]) == 1
    if kind == "Output" and name.startswith("output_"):
        return parents[name] == [name[len("output_") :]] and len(children[name[len("output_") :]]) == 1
    return False


def _list_ends(names: list[str], links: dict, verb: str) -> str:
    return ", ".join(f"{n!r} {verb} {_names(links[n]) if links[n] else 'nothing'}" for n in names) or "none"


def _names(names) -> str:
    return ", ".join(repr(n) for n in names)


def _population_sizes(nodes: dict, parents: dict, children: dict, inp: str) -> dict[str, int]:
    """Neurons per population: the parameter vectors' length; for scalar parameters (Norse writes
    them) the size of what feeds or reads the population."""
    sizes = {inp: end_size(inp, nodes[inp])}
    for name, node in nodes.items():
        if type(node).__name__ not in POPULATION_TYPES:
            continue
        lengths = {
            array(getattr(node, p)).size
            for p in ("tau_mem", "tau_syn", "r", "v_leak", "v_threshold", "w_in", "v_reset")
            if getattr(node, p, None) is not None and array(getattr(node, p)).ndim > 0
        }
        lengths.discard(1)
        if len(lengths) > 1:
            raise ValueError(
                f"node {name!r} ({type(node).__name__}): parameter vectors of different lengths "
                f"{sorted(lengths)}. Fix: give every parameter one entry per neuron (or one for all)"
            )
        if lengths:
            sizes[name] = lengths.pop()
            continue
        guess = [s for p in parents[name] if (s := _out_size(nodes[p])) is not None]
        guess += [s for c in children[name] if (s := _in_size(nodes[c])) is not None]
        sizes[name] = guess[0] if guess else 1
    return sizes


def end_size(name: str, node: Any) -> int:
    """The length of an Input's or Output's flat vector (a leading batch dimension of 1, as
    nirtorch writes without ``ignore_dims``, dropped)."""
    kind = type(node).__name__
    types = node.input_type if kind == "Input" else node.output_type
    shape = array(next(iter(types.values()))).astype(int).reshape(-1).tolist()
    if len(shape) == 2 and shape[0] == 1:
        shape = shape[1:]
    if len(shape) != 1:
        raise ValueError(
            f"node {name!r} ({kind}): eventkit {kind.lower()}s are flat vectors, got shape {shape}. "
            "Fix: export with a 1-D shape (snnTorch/nirtorch: ignore_dims=[0] drops the batch dimension)"
        )
    return int(shape[0])


def _out_size(node: Any) -> int | None:
    kind = type(node).__name__
    if kind in ("Linear", "Affine"):
        return int(array(node.weight).shape[0])
    if kind in ("Scale", "Delay"):
        v = array(node.scale if kind == "Scale" else node.delay)
        return int(v.size) if v.ndim else None
    return None


def _in_size(node: Any) -> int | None:
    kind = type(node).__name__
    if kind in ("Linear", "Affine"):
        w = array(node.weight)
        return int(w.shape[1]) if w.ndim == 2 else None
    return _out_size(node)


# --------------------------------------------------------------------------- composition
class _Terms:
    """A synaptic node's output as a sum of terms: output element ``elem`` receives
    ``coef`` times presynaptic neuron ``idx`` of population ``src`` (an index into ``pops``),
    delayed by ``delay``."""

    __slots__ = ("elem", "src", "idx", "coef", "delay", "size")

    def __init__(self, elem, src, idx, coef, delay, size):
        self.elem, self.src, self.idx, self.coef, self.delay, self.size = elem, src, idx, coef, delay, size

    @staticmethod
    def identity(src: int, n: int) -> "_Terms":
        i = np.arange(n)
        return _Terms(i, np.full(n, src), i, np.ones(n), np.zeros(n), n)

    @staticmethod
    def concat(parts: list["_Terms"], size: int) -> "_Terms":
        cat = lambda a: np.concatenate([getattr(p, a) for p in parts])  # noqa: E731
        return _Terms(cat("elem"), cat("src"), cat("idx"), cat("coef"), cat("delay"), size)

    def take(self, keep) -> "_Terms":
        return _Terms(self.elem[keep], self.src[keep], self.idx[keep], self.coef[keep], self.delay[keep], self.size)


def _apply(name: str, node: Any, terms: _Terms) -> _Terms:
    kind = type(node).__name__
    if kind == "Flatten":
        return terms
    if kind in ("Scale", "Delay"):
        v = array(node.scale if kind == "Scale" else node.delay).reshape(-1)
        if v.size not in (1, terms.size):
            raise ValueError(
                f"node {name!r} ({kind}) has {v.size} entries for an input of {terms.size}. "
                f"Fix: give it {terms.size} entries (or one)"
            )
        v = np.broadcast_to(v, (terms.size,))
        if kind == "Scale":
            out = _Terms(terms.elem, terms.src, terms.idx, terms.coef * v[terms.elem], terms.delay, terms.size)
            return out.take(out.coef != 0)
        if np.any(v < 0) or not np.all(np.isfinite(v)):
            raise ValueError(
                f"node {name!r} (Delay): delays must be finite and >= 0, got {v.min():g}. "
                "Fix: export non-negative delays"
            )
        return _Terms(terms.elem, terms.src, terms.idx, terms.coef, terms.delay + v[terms.elem], terms.size)
    w = array(node.weight)
    if w.ndim != 2:
        raise ValueError(
            f"node {name!r} ({kind}): weight must be a matrix, got shape {w.shape}. Fix: write it as (n_out, n_in)"
        )
    if w.shape[1] != terms.size:
        raise ValueError(
            f"node {name!r} ({kind}): weight shape {w.shape} takes {w.shape[1]} inputs, it is fed {terms.size}. "
            f"Fix: a weight of shape ({w.shape[0]}, {terms.size}), or feed it from a population of {w.shape[1]}"
        )
    rows, cols = np.nonzero(w)
    order = np.argsort(cols, kind="stable")
    rows, cols = rows[order], cols[order]
    vals = w[rows, cols]
    per_col = np.bincount(cols, minlength=w.shape[1])
    start = np.concatenate([[0], np.cumsum(per_col)])
    count = per_col[terms.elem]
    rep = np.repeat(np.arange(terms.elem.size), count)
    first = np.repeat(start[terms.elem], count)
    offset = np.arange(rep.size) - np.repeat(np.cumsum(count) - count, count)
    pick = first + offset
    return _Terms(
        rows[pick], terms.src[rep], terms.idx[rep], terms.coef[rep] * vals[pick], terms.delay[rep], w.shape[0]
    )


def _compose(nodes: dict, parents: dict, children: dict, sizes: dict) -> dict[tuple[str, str], Connection]:
    pops = list(sizes)
    index = {p: k for k, p in enumerate(pops)}
    synaptic = [n for n, v in nodes.items() if type(v).__name__ in SYNAPTIC_TYPES]
    # topological order of the synaptic nodes (populations cut every cycle)
    is_syn = set(synaptic)
    pending = {n: sum(1 for p in parents[n] if p in is_syn) for n in synaptic}
    ready = [n for n in synaptic if pending[n] == 0]
    order = []
    while ready:
        n = ready.pop()
        order.append(n)
        for c in children[n]:
            if c in pending:
                pending[c] -= 1
                if pending[c] == 0:
                    ready.append(c)
    if len(order) != len(synaptic):
        cyc = sorted(n for n in synaptic if pending[n] > 0)
        raise ValueError(
            f"nodes {_names(cyc)} form a cycle without a neuron population; a recurrent connection "
            "must pass through a CubaLIF. Fix: route the cycle through a neuron population"
        )
    out: dict[str, _Terms] = {}
    via: dict[str, set[int]] = {}  # synaptic node -> the populations its input comes from

    def feed(node: str, p: str) -> tuple[_Terms, set[int]]:
        if p in index:
            return _Terms.identity(index[p], sizes[p]), {index[p]}
        if p in out:
            return out[p], via[p]
        raise ValueError(
            f"node {node!r} is fed by {p!r} ({type(nodes[p]).__name__}), which is not a population or a "
            "synaptic node. Fix: feed it from a CubaLIF, CubaLI or the Input"
        )

    for n in order:
        feeds = [feed(n, p) for p in parents[n]]
        sz = {f.size for f, _ in feeds}
        if len(sz) > 1:
            raise ValueError(
                f"node {n!r} sums inputs of different sizes {sorted(sz)} from {_names(parents[n])}. "
                "Fix: feed it inputs of one size"
            )
        out[n] = _apply(n, nodes[n], _Terms.concat([f for f, _ in feeds], sz.pop()))
        via[n] = set().union(*(v for _, v in feeds))
    conns: dict[tuple[str, str], Connection] = {}
    for post in pops:
        if type(nodes[post]).__name__ == "Input":
            continue
        parts: dict[int, list[_Terms]] = {}
        for p in parents[post]:
            t, sources = feed(post, p)
            if t.size != sizes[post]:
                raise ValueError(
                    f"node {p!r} gives {t.size} values to {post!r}, which has {sizes[post]} neurons. "
                    f"Fix: make {p!r} output {sizes[post]} values"
                )
            for s in sources:
                parts.setdefault(s, []).append(t.take(t.src == s))
        ancestors = _synaptic_ancestors(post, parents, index)
        for s, ts in parts.items():
            path = sorted(n for n in ancestors if s in via[n])
            has_delay = any(type(nodes[n]).__name__ == "Delay" for n in path)
            conns[(pops[s], post)] = _synapses(pops[s], post, _Terms.concat(ts, sizes[post]), sizes, has_delay, path)
    return conns


def _synaptic_ancestors(post: str, parents: dict, index: dict) -> set[str]:
    found, stack = set(), [p for p in parents[post] if p not in index]
    while stack:
        n = stack.pop()
        if n not in found:
            found.add(n)
            stack += [p for p in parents[n] if p not in index]
    return found


def _synapses(pre: str, post: str, t: _Terms, sizes: dict, has_delay: bool, path: list[str]) -> Connection:
    """Terms summed per synapse and delay; each synapse must end up with one delay."""
    n_post, n_pre = sizes[post], sizes[pre]
    w = np.zeros((n_post, n_pre))
    d = np.full((n_post, n_pre), np.nan) if has_delay else None
    if t.elem.size:
        order = np.lexsort((t.delay, t.idx, t.elem))
        e, i, c, dl = t.elem[order], t.idx[order], t.coef[order], t.delay[order]
        new = np.concatenate([[True], (e[1:] != e[:-1]) | (i[1:] != i[:-1]) | (dl[1:] != dl[:-1])])
        starts = np.flatnonzero(new)
        cs = np.add.reduceat(c, starts)
        e, i, dl = e[starts], i[starts], dl[starts]
        keep = cs != 0
        e, i, dl, cs = e[keep], i[keep], dl[keep], cs[keep]
        twice = np.flatnonzero((e[1:] == e[:-1]) & (i[1:] == i[:-1]))
        if twice.size:
            k = twice[0]
            raise ValueError(
                f"the synapse from {pre!r}[{i[k]}] to {post!r}[{e[k]}] arrives with two delays "
                f"({dl[k]:g} and {dl[k + 1]:g} file time units, through {_names(path)}); eventkit holds one "
                "delay per synapse. Fix: keep one path (or equal delays) per synapse"
            )
        w[e, i] = cs
        if d is not None:
            d[e, i] = dl
    if d is not None:
        known = d[~np.isnan(d)]
        # a synapse of weight 0 has no effect and no delay in the file: it takes the smallest one
        d[np.isnan(d)] = known.min() if known.size else 0.0
    return Connection(pre, post, w, d, path)
