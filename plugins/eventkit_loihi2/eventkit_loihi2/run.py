"""Run a deployment on Loihi 2: ``python -m eventkit_loihi2.run RUN/deploy/loihi2``.

One command, two steps, the same runner (:mod:`eventkit_loihi2.lava_runner`, executed by the Lava
interpreter) for both:

1. **Simulated chip**: ``model.net`` on the inputs of ``samples.npz`` in Lava's
   ``Loihi2SimCfg`` (bit-accurate fixed point); every readout voltage is compared with the
   emulator's. A mismatch stops here (exit 1).
2. **Loihi 2 hardware**: the same network and samples with ``Loihi2HwCfg``, spikes through
   lava-loihi's embedded I/O adapter, the readout read by a state probe and the board profiled by
   lava-loihi's Loihi 2 profiler. The readout is compared with the emulator's voltages and
   predictions, and the measured time per step, static / dynamic power and energy per sample
   are written to ``hardware.json`` beside the deployment (the deploy report uses it from then
   on). Where the Lava interpreter has no lava-loihi (Intel gives it to members of its
   Neuromorphic Research Community), this step prints one line saying what is missing and how to
   get it, and the command exits with status 3.

Exit status: 0 both steps ran and agree, 1 a disagreement, 2 bad input / no Lava, 3 the hardware
step could not start.
"""

from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path

import numpy as np

from eventkit.plugin import write_json

from .emulator import predictions_from_voltages
from .lava_check import HardwareUnavailable, check, compare, run_lava
from .lava_env import resolve_lava_python
from .report import samples_fingerprint

HARDWARE_JSON = "hardware.json"
EXIT_MISMATCH, EXIT_INPUT, EXIT_NO_HARDWARE = 1, 2, 3


def hardware_record(samples: dict, v_hw: np.ndarray, info: dict, fingerprint: str | None = None) -> dict:
    """What a hardware run measured, per sample, from ``samples.npz``'s arrays, the chip's readout
    voltages ``v_hw`` [N, T, n_out] and the runner's ``info`` (its ``profile``: time per step in
    us, total and static power in W). Energy per sample = power x steps per sample x time per
    step; dynamic = total - static."""
    prof = info.get("profile") or {}
    for key in ("time_per_step_us", "total_power_w", "static_power_w"):
        if prof.get(key) is None:
            raise ValueError(f"the hardware run's profile has no {key}: {sorted(prof)}")
    emu_v = np.asarray(samples["v_out"])[: len(v_hw)]
    cmp = compare(emu_v, v_hw)
    n, steps = int(v_hw.shape[0]), int(v_hw.shape[1])
    record = dict(
        source="measured on a Loihi 2 chip with lava-loihi's profiler (eventkit_loihi2.run)",
        fingerprint=fingerprint,
        date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        host=prof.get("host"),
        partition=prof.get("partition"),
        board_chips=prof.get("board_chips"),
        lava_nc=info.get("lava_nc"),
        lava_dl=info.get("lava_dl"),
        samples=n,
        steps_per_sample=steps,
        bit_exact_vs_emulator=cmp.bit_exact,
        mismatches=cmp.mismatches,
        first_mismatch=cmp.first,
        wall_seconds=info.get("seconds"),
    )
    if "readout" in samples:
        readout, offset = str(samples["readout"]), int(samples["readout_offset"])
        hw_pred = predictions_from_voltages(v_hw, readout, offset)
        emu_pred = np.asarray(samples["predictions"])[:n]
        record.update(
            readout=readout,
            prediction_agreement=float(np.mean(hw_pred == emu_pred)) if n else None,
            chip_accuracy=float(np.mean(hw_pred == np.asarray(samples["labels"])[:n])) if n else None,
        )
    t_us = float(prof["time_per_step_us"])
    total_w, static_w = float(prof["total_power_w"]), float(prof["static_power_w"])
    sample_s = steps * t_us * 1e-6
    record.update(
        time_per_step_us=t_us,
        time_per_sample_ms=sample_s * 1e3,
        total_power_w=total_w,
        static_power_w=static_w,
        dynamic_power_w=total_w - static_w,
        energy_per_sample_mj=dict(
            static=static_w * sample_s * 1e3,
            dynamic=(total_w - static_w) * sample_s * 1e3,
            total=total_w * sample_s * 1e3,
        ),
        rails_w={k: prof.get(k) for k in ("vdd_power_w", "vddm_power_w", "vddio_power_w")},
    )
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m eventkit_loihi2.run", description=__doc__.split("\n")[0].split(": ")[0]
    )
    parser.add_argument("deploy_dir", help="a run's deploy/loihi2 directory (model.net, samples.npz)")
    parser.add_argument("--python", help="Lava interpreter (default: the built environment)")
    parser.add_argument("--partition", help="SLURM partition of an INRC Loihi 2 system")
    parser.add_argument(
        "--board-chips",
        type=int,
        default=1,
        help="chips on the Loihi 2 board (8 on a Kapoho Point): power is reported per chip",
    )
    parser.add_argument("--samples", type=int, default=None, help="run only the first N samples")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per Lava run")
    args = parser.parse_args(argv)
    d = Path(args.deploy_dir)
    if args.board_chips < 1:
        print(f"eventkit_loihi2.run: --board-chips must be >= 1, got {args.board_chips}", file=sys.stderr)
        return EXIT_INPUT
    for name in ("model.net", "samples.npz"):
        if not (d / name).exists():
            print(
                f"eventkit_loihi2.run: {d / name} does not exist; give a deploy/loihi2 directory "
                "written by `python -m eventkit target=loihi2`",
                file=sys.stderr,
            )
            return EXIT_INPUT
    py = resolve_lava_python(args.python)
    if py is None:
        print(
            "eventkit_loihi2.run: no Lava interpreter; build one with "
            "`python -m eventkit_loihi2.lava_env build` or pass --python",
            file=sys.stderr,
        )
        return EXIT_INPUT
    net, samples = d / "model.net", d / "samples.npz"
    sim = check(py, net, samples, d / "lava_voltages.npz", "sim", args.timeout, samples_max=args.samples)
    print(f"Loihi2SimCfg: {sim.message()}", flush=True)
    if not sim.bit_exact:
        return EXIT_MISMATCH
    out = d / "hardware_voltages.npz"
    try:
        info = run_lava(py, net, samples, out, "hw", args.timeout, args.samples, args.partition, args.board_chips)
    except HardwareUnavailable as exc:
        print(f"Loihi2HwCfg: not run. {exc}", flush=True)
        return EXIT_NO_HARDWARE
    with np.load(samples) as z:
        arrays = {k: z[k] for k in z.files}
    with np.load(out) as z:
        v_hw = z["v_out"]
    record = hardware_record(arrays, v_hw, info, samples_fingerprint(samples))
    write_json(d / HARDWARE_JSON, record)
    e = record["energy_per_sample_mj"]
    print(
        f"Loihi2HwCfg: {record['samples']} samples, readout "
        f"{'bit-exact with' if record['bit_exact_vs_emulator'] else 'DIFFERENT from'} the emulator"
        + (
            f", predictions agree {100 * record['prediction_agreement']:.1f} %"
            if "prediction_agreement" in record
            else ""
        )
        + f"; {record['time_per_step_us']:.2f} us/step, {record['time_per_sample_ms']:.3f} ms/sample, "
        f"{e['static']:.4f} mJ static + {e['dynamic']:.4f} mJ dynamic per sample -> {d / HARDWARE_JSON}",
        flush=True,
    )
    return 0 if record["bit_exact_vs_emulator"] else EXIT_MISMATCH


if __name__ == "__main__":
    sys.exit(main())
