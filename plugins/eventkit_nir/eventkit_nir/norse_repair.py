"""Repair a graph written by Norse 1.1.0's ``to_nir`` so that it describes the network Norse ran.

Norse 1.1.0 writes each ``LIFCell`` as a CubaLIF with ``tau = dt / tau_inv`` (the time constants
a factor dt too small), ``w_in = 1`` (its LIFCell adds a spike's weight to the synaptic current
directly, i.e. ``w_in = tau_syn / dt``), scalar parameters (which ``nir.write`` cannot store) and
input/output shapes with a batch dimension. :func:`fix_norse` returns the graph with
``tau = 1 / tau_inv``, ``w_in = tau_syn / dt``, per-neuron parameter vectors and 1-D shapes::

    python -m eventkit_nir.norse_repair IN.nir OUT.nir --dt 0.001

(``--dt``: the dt given to ``norse.torch.to_nir``, in seconds; its default is 0.001.)
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from .wiring import array, wiring


def fix_norse(graph: Any, dt: float = 0.001) -> Any:
    """A copy of ``graph`` (written by Norse 1.1.0's ``to_nir(..., dt=dt)``) that states the
    network Norse simulated; see the module docstring."""
    import nir

    if not dt > 0:
        raise ValueError(f"dt must be the positive step (seconds) given to to_nir, got {dt!r}")
    sizes = wiring(_without_batch(graph)).sizes
    nodes = {}
    for name, node in graph.nodes.items():
        kind = type(node).__name__
        if kind in ("CubaLIF", "CubaLI"):
            n = sizes[name]
            vec = lambda x, d=0.0: np.broadcast_to(array(d if x is None else x).reshape(-1), (n,)).astype(np.float64)  # noqa: E731
            tau_syn, tau_mem = vec(node.tau_syn) / dt, vec(node.tau_mem) / dt
            common = dict(
                tau_syn=tau_syn, tau_mem=tau_mem, r=vec(node.r, 1.0), v_leak=vec(node.v_leak), w_in=tau_syn / dt
            )
            if kind == "CubaLIF":
                nodes[name] = nir.CubaLIF(v_threshold=vec(node.v_threshold), v_reset=vec(node.v_reset), **common)
            else:
                nodes[name] = nir.CubaLI(**common)
        elif kind in ("Linear", "Affine"):
            w = array(node.weight)
            bias = None if kind == "Linear" or node.bias is None else array(node.bias)
            nodes[name] = nir.Linear(w) if bias is None or not np.any(bias) else nir.Affine(w, bias)
        elif kind in ("Input", "Output"):
            shape = _flat_shape(next(iter((node.input_type if kind == "Input" else node.output_type).values())))
            nodes[name] = nir.Input(shape) if kind == "Input" else nir.Output(shape)
        else:
            nodes[name] = node
    return nir.NIRGraph(nodes=nodes, edges=list(graph.edges), metadata=dict(graph.metadata or {}))


def _flat_shape(shape) -> np.ndarray:
    s = np.asarray(shape).astype(int).reshape(-1)
    return s[1:] if s.size == 2 and s[0] == 1 else s


def _without_batch(graph: Any) -> Any:
    import nir

    nodes = dict(graph.nodes)
    for name, node in graph.nodes.items():
        if type(node).__name__ == "Input":
            nodes[name] = nir.Input(_flat_shape(next(iter(node.input_type.values()))))
    return nir.NIRGraph(nodes=nodes, edges=list(graph.edges), type_check=False)


def main(argv: list[str] | None = None) -> int:
    import nir

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source")
    ap.add_argument("target")
    ap.add_argument("--dt", type=float, default=0.001, help="the dt given to norse.torch.to_nir (seconds)")
    args = ap.parse_args(argv)
    fixed = fix_norse(nir.read(args.source, type_check=False), dt=args.dt)
    nir.write(args.target, fixed)
    print(f"wrote {args.target}: time constants x {1 / args.dt:g}, w_in = tau_syn / dt")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
