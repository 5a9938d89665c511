"""Cost and exactness of writing delayed connections: export, ``nir.read`` and import CPU time
(minimum over rounds), file size and node count, and whether export -> nir.write -> nir.read ->
import gives back identical weights, delays and forward pass (on random input spikes).

    python -m eventkit_nir.delay_bench RUN_DIR/deploy/nir/model.nir [--rounds 5]
    python -m eventkit_nir.delay_bench --synthetic 700 256 20 [--recurrent]

The first form measures a trained network (e.g. ``+experiment=timing_delays target=nir``); the
second a fresh one with exact per-synapse delays drawn uniformly in 0-50 ms on its feed-forward
connection. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def _random_spikes(n_in: int, n_steps: int, dt: float, samples: int, seed: int = 0):
    from eventkit.plugin import SpikeData

    rng = np.random.default_rng(seed)
    counts = rng.poisson(0.05 * n_in * n_steps, size=samples)  # 50 Hz per channel at dt 1 ms
    steps = rng.integers(0, n_steps, size=counts.sum())
    channels = rng.integers(0, n_in, size=counts.sum())
    offsets = np.concatenate([[0], np.cumsum(counts)])
    for k in range(samples):  # time-ordered within each sample
        a, b = offsets[k], offsets[k + 1]
        order = np.argsort(steps[a:b], kind="stable")
        steps[a:b], channels[a:b] = steps[a:b][order], channels[a:b][order]
    return SpikeData(offsets, steps, channels, np.zeros(samples, dtype=np.int64), n_in, n_steps, dt, 2)


def main(argv: list[str] | None = None) -> int:
    import nir

    from eventkit.plugin import EventpropNet, SumV

    from .export import write_nir
    from .reader import network_from_nir

    ap = argparse.ArgumentParser()
    ap.add_argument("file", nargs="?")
    ap.add_argument("--synthetic", nargs=3, type=int, metavar=("N_IN", "N_HIDDEN", "N_OUT"))
    ap.add_argument("--recurrent", action="store_true")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--samples", type=int, default=100)
    args = ap.parse_args(argv)
    if (args.file is None) == (args.synthetic is None):
        ap.error("give a .nir file or --synthetic N_IN N_HIDDEN N_OUT")
    if args.file:
        net = network_from_nir(args.file, readout=SumV())
    else:
        n_in, n_hidden, n_out = args.synthetic
        net = EventpropNet(
            n_in,
            n_out,
            [n_hidden],
            recurrent=[args.recurrent],
            readout=SumV(),
            dt=1.0,
            n_steps=200,
            delays={"ff": {"max": 50.0, "init": [0.0, 50.0], "mode": "exact"}},
            generator=torch.Generator().manual_seed(0),
        )
    export, read, load = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.nir"
        for _ in range(args.rounds):
            t0 = time.process_time()
            write_nir(net, path)
            export.append(time.process_time() - t0)
            t0 = time.process_time()
            graph = nir.read(str(path))
            read.append(time.process_time() - t0)
            t0 = time.process_time()
            back = network_from_nir(graph, readout=SumV())
            load.append(time.process_time() - t0)
        size = path.stat().st_size
    delayed = [c for c in net.topology.connections if c.delay is not None]
    data = _random_spikes(net.n_in, net.n_steps, net.dt, args.samples)
    with torch.no_grad():
        a, b = net(data), back(data)
    result = dict(
        source=args.file or f"synthetic {args.synthetic}{' recurrent' if args.recurrent else ''}",
        delayed_synapses=int(sum(getattr(net, c.delay_name).numel() for c in delayed)),
        distinct_delays=int(sum(np.unique(getattr(net, c.delay_name).detach().numpy()).size for c in delayed)),
        nodes=len(graph.nodes),
        bytes=size,
        export_cpu_s=round(min(export), 3),
        nir_read_cpu_s=round(min(read), 3),
        import_cpu_s=round(min(load), 3),
        delays_identical=all(torch.equal(getattr(net, c.delay_name), getattr(back, c.delay_name)) for c in delayed),
        weights_identical=all(
            torch.equal(getattr(net, c.name), getattr(back, c.name)) for c in net.topology.connections
        ),
        forward_identical=bool(torch.equal(a.readout, b.readout) and torch.equal(a.counts, b.counts)),
        hidden_spikes=int(a.counts.sum()),
        samples=args.samples,
    )
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
