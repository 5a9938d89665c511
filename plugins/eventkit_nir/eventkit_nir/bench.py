"""Train a network with ``target=nir``, then simulate its model.nir in Norse and snnTorch and
compare with the engine on the test set.

    python -m eventkit_nir.bench OUT_DIR [overrides ...] [--samples N]

Prints one JSON line: export/import seconds, and per importer the prediction agreement and the
share of (sample, hidden neuron) spike counts that match the engine exactly.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch


def main(argv: list[str] | None = None) -> int:
    from eventkit.plugin import load_data, run
    from eventkit.plugin import compose
    from eventkit.plugin import get_registry

    from .conventions import Convention
    from .export import to_nir
    from .importers import _cycles, predictions_from_trace, run_norse, run_snntorch
    from .reader import network_from_nir

    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("overrides", nargs="*")
    ap.add_argument("--samples", type=int, default=1000)
    args = ap.parse_args(argv)
    cfg = compose(list(args.overrides) + ["target=nir", "trainer.progress=false"])
    summary = run(cfg, Path(args.out))
    fields = summary["deploy"]["nir"]
    splits, _ = load_data(cfg, get_registry())
    test = splits.test.subset(np.arange(min(args.samples, len(splits.test))))
    registry = get_registry()
    readout = registry.build("readout", dict(cfg.readout))
    net = network_from_nir(fields["file"], readout=readout)
    with torch.no_grad():
        out = net(test)
    engine_pred = net.predict(out.readout).numpy()
    counts = out.counts.numpy()
    result = dict(
        overrides=args.overrides,
        samples=len(test),
        test_accuracy=summary["test_accuracy"],
        export_s=fields["export_s"],
        import_s=fields["import_s"],
        bytes=fields["bytes"],
        roundtrip_prediction_agreement=fields["roundtrip_prediction_agreement"],
        engine_accuracy_on_samples=float(np.mean(engine_pred == test.labels)),
    )
    for conv_name, importer in (("seconds", "norse"), ("snntorch", "snntorch")):
        graph = to_nir(net, convention=conv_name, readout_as="cubalif")
        conv = Convention.make(conv_name, net.dt)
        if importer == "snntorch" and _cycles(graph):
            result[importer] = "recurrent graph: not simulated correctly by snnTorch 1.0.0"
            continue
        t0 = time.perf_counter()
        sim = run_norse(graph, test, conv.dt) if importer == "norse" else run_snntorch(graph, test)
        pred = predictions_from_trace(net, sim.trace)
        result[importer] = dict(
            prediction_agreement=float(np.mean(pred == engine_pred)),
            count_agreement=float(np.mean(sim.counts == counts)),
            spikes_engine=float(counts.sum()),
            spikes_importer=float(sim.counts.sum()),
            accuracy=float(np.mean(pred == test.labels)),
            seconds=round(time.perf_counter() - t0, 1),
        )
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
