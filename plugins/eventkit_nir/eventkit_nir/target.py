"""The ``nir`` target: after training, the network as a NIR graph in ``deploy/nir/model.nir``.

deploy: write the graph -> (``check: auto``) read it back with ``nir.read``, rebuild the network
from it and compare its test-set predictions with the trained network's -> ``deploy/nir/nir.json``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from eventkit.plugin import Target, write_json

from .conventions import CONVENTIONS, READOUT_NODES
from .export import HIDDEN_MODELS, OUTPUT_MODELS, write_nir

CHECKS = ("auto", "off")


class NirTarget(Target):
    """NIR export; see ``conf/target/nir.yaml`` and the package README."""

    name = "nir"

    def __init__(self, convention: str = "seconds", readout_as: str = "cubali", check: str = "auto"):
        if convention not in CONVENTIONS:
            raise ValueError(f"target.convention must be one of {list(CONVENTIONS)}, got {convention!r}")
        if readout_as not in READOUT_NODES:
            raise ValueError(f"target.readout_as must be one of {list(READOUT_NODES)}, got {readout_as!r}")
        if check not in CHECKS:
            raise ValueError(f"target.check must be one of {list(CHECKS)}, got {check!r}")
        self.convention, self.readout_as, self.check_mode = convention, readout_as, check

    def check(self, net: Any, data) -> None:
        """The built network's neuron models against what the exporter writes."""
        for pop in net.topology.hidden:
            if pop.model.name not in HIDDEN_MODELS:
                raise ValueError(
                    f"neuron={pop.model.name}: NIR export writes {'/'.join(HIDDEN_MODELS)} hidden "
                    "neurons (as CubaLIF). Fix: neuron=lif"
                )
        out = net.topology.output.model.name
        if out not in OUTPUT_MODELS:
            raise ValueError(
                f"network.output.name={out}: NIR export writes {'/'.join(OUTPUT_MODELS)} "
                "outputs (as CubaLI / CubaLIF). Fix: network.output.name=li"
            )

    def deploy(self, net: Any, splits, run_dir, batch: int = 256) -> dict:
        out = Path(run_dir) / "deploy" / self.name
        out.mkdir(parents=True, exist_ok=True)
        path = out / "model.nir"
        t0 = time.perf_counter()
        write_nir(net, path, convention=self.convention, readout_as=self.readout_as)
        export_s = time.perf_counter() - t0
        from .conventions import Convention

        conv = Convention.make(self.convention, net.dt)
        fields: dict = dict(
            file=str(path),
            bytes=path.stat().st_size,
            export_s=round(export_s, 4),
            convention=self.convention,
            readout_as=self.readout_as,
            simulate_dt=conv.dt,
            time_unit_ms=conv.ms_per_unit,
        )
        if self.check_mode == "auto":
            from .reader import network_from_nir

            t0 = time.perf_counter()
            back = network_from_nir(path, readout=net.readout, dt=net.dt, n_steps=net.n_steps)
            fields["import_s"] = round(time.perf_counter() - t0, 4)
            a, b = net.predictions(splits.test, batch), back.predictions(splits.test, batch)
            fields["roundtrip_prediction_agreement"] = float(np.mean(a == b)) if len(a) else None
            print(
                f"nir: wrote {path} ({fields['bytes']} bytes, {export_s:.2f} s); read back: "
                f"{100 * fields['roundtrip_prediction_agreement']:.2f} % of test predictions identical",
                flush=True,
            )
        write_json(out / "nir.json", fields)
        return fields
