"""Run an exported ``model.net`` in Lava on the inputs of ``samples.npz``; record readout voltages.

This file is executed BY THE LAVA INTERPRETER (a separate environment, see
:mod:`eventkit_loihi2.lava_env`), so it imports nothing from eventkit: only numpy and Lava.
A Loihi 2 user can run it directly in their own Lava environment::

    python lava_runner.py --net model.net --samples samples.npz --out lava_voltages.npz \
        [--backend sim|hw] [--samples-max N]

How: the network is loaded with ``lava.lib.dl.netx.hdf5.Network`` unchanged; one RingBuffer
holds all samples back to back ([n_in, N*T], binary spikes) and feeds ``net.inp``; a Monitor
records the readout neurons' ``v`` every step.  The run is split into N runs of T steps; between
two samples every neuron's u, v and every synapse buffer is set back to 0, so each sample starts
from rest exactly as the emulator does.  ``sim`` uses ``Loihi2SimCfg(select_tag='fixed_pt')``
(Lava's bit-accurate Python models); ``hw`` uses ``Loihi2HwCfg`` and needs Intel's lava-loihi.
Writes ``v_out`` int32 [N, T, n_out], ``seconds`` (wall time of the runs) and the versions.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np


def _zero(var) -> None:
    var.set(np.zeros(var.shape, dtype=np.int32))


def _reset(net) -> None:
    for block in net.layers:
        for name in ("neuron", "synapse", "synapse_rec"):
            proc = getattr(block, name, None)
            if proc is None:
                continue
            for var_name in ("u", "v", "a_buff"):
                var = getattr(proc, var_name, None)
                if var is not None:
                    _zero(var)


def run(net_path: str, samples_path: str, out_path: str, backend: str = "sim", samples_max: int | None = None) -> dict:
    from lava.lib.dl import netx
    from lava.magma.core.run_conditions import RunSteps
    from lava.proc.io.source import RingBuffer
    from lava.proc.monitor.process import Monitor

    with np.load(samples_path) as z:
        inputs = z["inputs"]
    if samples_max is not None:
        inputs = inputs[:samples_max]
    n, T, n_in = inputs.shape
    net = netx.hdf5.Network(net_config=net_path)
    if tuple(net.inp.shape) != (n_in,):
        raise ValueError(f"model.net expects input shape {net.inp.shape}, samples have {n_in}")
    spikes = np.ascontiguousarray(inputs.transpose(2, 0, 1).reshape(n_in, n * T)).astype(np.int32)
    source = RingBuffer(data=spikes)
    readout = net.layers[-1].neuron
    if backend == "sim":
        from lava.magma.core.run_configs import Loihi2SimCfg

        source.s_out.connect(net.inp)
        monitor = Monitor()
        monitor.probe(readout.v, n * T)
        run_cfg = Loihi2SimCfg(select_tag="fixed_pt")
    elif backend == "hw":
        from lava.magma.core.run_configs import Loihi2HwCfg
        from lava.proc import embedded_io as eio  # part of lava-loihi
        from lava.utils.loihi2_state_probes import StateProbe  # part of lava-loihi

        adapter = eio.spike.PyToNxAdapter(shape=net.inp.shape)
        source.s_out.connect(adapter.inp)
        adapter.out.connect(net.inp)
        monitor = StateProbe(readout.v)
        run_cfg = Loihi2HwCfg(callback_fxs=[monitor])
    else:
        raise ValueError(f"backend must be 'sim' or 'hw', got {backend!r}")

    t0 = time.perf_counter()
    for k in range(n):
        net.run(condition=RunSteps(num_steps=T), run_cfg=run_cfg)
        if k + 1 < n:
            _reset(net)
    seconds = time.perf_counter() - t0
    if backend == "sim":
        data = monitor.get_data()
        v = data[readout.name]["v"]
    else:
        v = monitor.time_series.T
    net.stop()
    v = np.asarray(v).reshape(n, T, -1).astype(np.int32)
    import importlib.metadata as meta

    info = dict(
        backend=backend,
        samples=n,
        steps=T,
        seconds=seconds,
        python=sys.version.split()[0],
        lava_nc=meta.version("lava-nc"),
        lava_dl=meta.version("lava-dl"),
    )
    np.savez_compressed(out_path, v_out=v, info=json.dumps(info))
    return info


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--net", required=True)
    parser.add_argument("--samples", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--backend", default="sim", choices=("sim", "hw"))
    parser.add_argument("--samples-max", type=int, default=None)
    args = parser.parse_args(argv)
    info = run(args.net, args.samples, args.out, args.backend, args.samples_max)
    print(json.dumps(info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
