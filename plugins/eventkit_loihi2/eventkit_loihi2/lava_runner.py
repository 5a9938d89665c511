"""Run an exported ``model.net`` in Lava on the inputs of ``samples.npz``; record readout voltages.

This file is executed BY THE LAVA INTERPRETER (a separate environment, see
:mod:`eventkit_loihi2.lava_env`), so it imports nothing from eventkit: only numpy and Lava.
A Loihi 2 user can run it directly in their own Lava environment::

    python lava_runner.py --net model.net --samples samples.npz --out lava_voltages.npz \
        [--backend sim|hw] [--samples-max N] [--partition NAME]

How: the network is loaded with ``lava.lib.dl.netx.hdf5.Network`` unchanged; one RingBuffer
holds all samples back to back ([n_in, N*T], binary spikes) and feeds ``net.inp``; a Monitor
records the readout neurons' ``v`` every step.  The run is split into N runs of T steps; between
two samples every neuron's u, v and every synapse buffer is set back to 0, so each sample starts
from rest exactly as the emulator does.  ``sim`` uses ``Loihi2SimCfg(select_tag='fixed_pt')``
(Lava's bit-accurate Python models); ``hw`` uses ``Loihi2HwCfg`` and needs Intel's lava-loihi
(given to members of Intel's Neuromorphic Research Community): spikes enter through lava-loihi's embedded I/O adapter
(``PyToNxAdapter``), the readout voltage is read by a ``StateProbe``, and lava-loihi's Loihi 2
profiler (``lava.utils.loihi2_profiler``: ``Loihi2Power``, ``Loihi2ExecutionTime``) records the
board's power and the time of every step. Without lava-loihi, ``hw`` stops before building
anything, prints one line saying so and exits with status 3 (``HW_UNAVAILABLE``).
Writes ``v_out`` int32 [N, T, n_out], ``info`` (JSON: wall time of the runs, versions and, on
hardware, the profiler's figures).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

HW_UNAVAILABLE = 3  # exit status: the hardware step could not start (no lava-loihi)
HW_MISSING = (
    "Loihi 2 hardware not available: Intel's lava-loihi extension (lava.utils.loihi2_profiler, "
    "lava.proc.embedded_io) is not installed for this Lava interpreter; it is given to members of "
    "Intel's Neuromorphic Research Community (INRC, intel.com/neuromorphic): install it in a Lava "
    "environment on an INRC Loihi 2 system and run this there"
)


class HardwareUnavailable(RuntimeError):
    """lava-loihi is missing: the hardware step cannot start."""


def lava_loihi_installed() -> bool:
    """True where lava-loihi (the non-public Loihi 2 extension of Lava) can be imported."""
    import importlib.util

    try:
        return importlib.util.find_spec("lava.utils.loihi2_profiler") is not None
    except ModuleNotFoundError:
        return False


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


def run(
    net_path: str,
    samples_path: str,
    out_path: str,
    backend: str = "sim",
    samples_max: int | None = None,
    partition: str | None = None,
    board_chips: int = 1,
) -> dict:
    if backend == "hw" and not lava_loihi_installed():
        raise HardwareUnavailable(HW_MISSING)
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
        from lava.utils import loihi
        from lava.utils import loihi2_profiler  # part of lava-loihi
        from lava.utils.loihi2_state_probes import StateProbe  # part of lava-loihi

        if partition:
            loihi.use_slurm_host(partition=partition)
        adapter = eio.spike.PyToNxAdapter(shape=net.inp.shape)
        source.s_out.connect(adapter.inp)
        adapter.out.connect(net.inp)
        monitor = StateProbe(readout.v)
        power = loihi2_profiler.Loihi2Power(num_steps=n * T)
        timer = loihi2_profiler.Loihi2ExecutionTime(buffer_size=n * T)
        run_cfg = Loihi2HwCfg(
            callback_fxs=[monitor],
            pre_run_fxs=[power.attach, timer.attach],
            post_run_fxs=[_results(power), _results(timer)],
        )
    else:
        raise ValueError(f"backend must be 'sim' or 'hw', got {backend!r}")

    t0 = time.perf_counter()
    for k in range(n):
        net.run(condition=RunSteps(num_steps=T), run_cfg=run_cfg)
        if k + 1 < n:
            _reset(net)
    seconds = time.perf_counter() - t0
    profile = {}
    if backend == "sim":
        data = monitor.get_data()
        v = data[readout.name]["v"]
    else:
        v = monitor.time_series.T
    net.stop()
    if backend == "hw":
        profile = _profile(power, timer, partition, board_chips)
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
        profile=profile,
    )
    np.savez_compressed(out_path, v_out=v, info=json.dumps(info))
    return info


def _results(logger):
    """A post-run hook reading a profiler: lava-loihi's profilers take the board in some
    versions and nothing in others."""

    def read(board):
        try:
            return logger.get_results(board)
        except TypeError:
            return logger.get_results()

    return read


def _profile(power, timer, partition: str | None, board_chips: int = 1) -> dict:
    """The Loihi 2 profiler's figures per chip: mean time per step (us), mean total and static
    power (W) and the per-rail means (neuron cores VDD, memory VDD-M, I/O VDD-IO), as Lava-DL's
    benchmark notebooks compute them: the power series' first half covers the run (the profiler
    measures the static power after it), and on a board of ``board_chips`` chips the static power
    is shared equally and the other chips' share is taken off the totals."""
    import os
    import platform

    chips = max(int(board_chips), 1)
    per_step = np.asarray(timer.time_per_step, dtype=np.float64)
    rails = {k: np.asarray(getattr(power, k), dtype=np.float64) for k in ("vdd_power", "vddm_power", "vddio_power")}
    static = {k: float(getattr(power, "static_" + k)) / chips for k in rails}
    half = max(len(rails["vdd_power"]) // 2, 1)
    run = {k: float(np.mean(v[:half])) - (chips - 1) * static[k] for k, v in rails.items()}
    return dict(
        time_per_step_us=float(np.mean(per_step)) if per_step.size else float(timer.avg_time_per_step),
        time_per_step_us_max=float(np.max(per_step)) if per_step.size else None,
        total_power_w=sum(run.values()),
        static_power_w=float(power.static_total_power) / chips,
        vdd_power_w=run["vdd_power"],
        vddm_power_w=run["vddm_power"],
        vddio_power_w=run["vddio_power"],
        board_chips=chips,
        partition=partition or os.environ.get("PARTITION"),
        host=platform.node(),
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--net", required=True)
    parser.add_argument("--samples", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--backend", default="sim", choices=("sim", "hw"))
    parser.add_argument("--samples-max", type=int, default=None)
    parser.add_argument("--partition", default=None, help="SLURM partition of an INRC Loihi 2 system (hw)")
    parser.add_argument("--board-chips", type=int, default=1, help="chips on the Loihi 2 board (hw power per chip)")
    args = parser.parse_args(argv)
    try:
        info = run(args.net, args.samples, args.out, args.backend, args.samples_max, args.partition, args.board_chips)
    except HardwareUnavailable as exc:
        print(str(exc), file=sys.stderr)
        return HW_UNAVAILABLE
    print(json.dumps(info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
