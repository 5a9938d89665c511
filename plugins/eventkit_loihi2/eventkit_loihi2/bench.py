"""Emulator vs Lava speed on the same samples.

    python -m eventkit_loihi2.bench                       # SHD-shaped: 700 -> 256 rec -> 20, 1000 steps
    python -m eventkit_loihi2.bench --deploy-dir RUN/deploy/loihi2   # a deployed model + its samples
    python -m eventkit_loihi2.bench --json

Both run the same samples of the same model.net. Emulator time excludes the one-off numba compile
(a warm-up run first) and is the best of ``--repeat`` runs; Lava time is its simulation loop
(``Loihi2SimCfg``, fixed_pt, as timed inside the runner) and, separately, the whole subprocess
including start-up and compilation. The voltages are compared as well, so the speed-up is quoted
only for runs that agree bit for bit.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from eventkit.plugin import from_samples

from .emulator import emulate
from .lava_check import compare, run_lava
from .lava_env import resolve_lava_python
from .netx import read_netx, write_netx, write_samples
from .quantize import FloatNetwork, quantize


def synthetic(n_samples: int, n_in: int, hidden: int, n_out: int, steps: int, spikes: int, seed: int = 0):
    """An SHD-shaped network (authors' init, lif neurons) and random input spike trains."""
    rng = np.random.default_rng(seed)
    from eventkit.plugin import LI, LIF

    fnet = FloatNetwork.layered(
        dict(
            ff0=rng.normal(0.03, 0.01, (hidden, n_in)),
            rec0=rng.normal(0.0, 0.02, (hidden, hidden)),
            out=rng.normal(0.0, 0.03, (n_out, hidden)),
        ),
        [LIF(tau_mem=20.0, tau_syn=5.0, threshold=1.0)],
        LI(tau_mem=20.0, tau_syn=5.0),
        n_steps=steps,
        readout=dict(name="exp_mean_v"),
    )
    samples = [(rng.integers(0, steps, spikes), rng.integers(0, n_in, spikes)) for _ in range(n_samples)]
    data = from_samples(
        samples, rng.integers(0, n_out, n_samples), n_channels=n_in, n_steps=steps, dt=1.0, n_classes=n_out
    )
    return quantize(fnet)[0], data


def _from_deploy(d: Path):
    chip = read_netx(d / "model.net")
    with np.load(d / "samples.npz") as z:
        raster, labels = z["inputs"], z["labels"]
    n, T, n_in = raster.shape
    samples = []
    for k in range(n):
        s, c = np.nonzero(raster[k])
        samples.append((s, c))
    data = from_samples(
        samples, labels, n_channels=n_in, n_steps=T, dt=chip.dt, n_classes=max(int(labels.max()) + 1, chip.n_out)
    )
    return chip, data


def bench(chip, data, lava_python: str | None, repeat: int = 5, work: Path | None = None) -> dict:
    emulate(chip, data.subset([0]), n_record=1)  # compile once (cached on disk afterwards)
    times = []
    for _ in range(repeat):
        res = emulate(chip, data, n_record=len(data))
        times.append(res.seconds)
    emu_s = min(times)
    out = dict(
        samples=len(data),
        steps=data.n_steps,
        layers=[layer.n for layer in chip.layers],
        n_in=chip.n_in,
        emulator_seconds=emu_s,
        emulator_ms_per_sample=1e3 * emu_s / len(data),
        machine=f"{platform.machine()} {platform.processor() or ''}".strip(),
        cpus=__import__("os").cpu_count(),
    )
    if lava_python is None:
        out["lava"] = "no Lava environment (python -m eventkit_loihi2.lava_env build)"
        return out
    work = Path(work or tempfile.mkdtemp(prefix="eventkit-bench-"))
    write_netx(chip, work / "model.net")
    write_samples(data, res, len(data), work / "samples.npz")
    t0 = time.perf_counter()
    info = run_lava(lava_python, work / "model.net", work / "samples.npz", work / "lava.npz")
    total = time.perf_counter() - t0
    with np.load(work / "lava.npz") as z:
        cmp = compare(res.v_out, z["v_out"])
    out.update(
        lava_seconds=info["seconds"],
        lava_ms_per_sample=1e3 * info["seconds"] / len(data),
        lava_total_seconds=total,
        bit_exact=cmp.bit_exact,
        speedup=info["seconds"] / emu_s if cmp.bit_exact else None,
        speedup_vs_total=total / emu_s if cmp.bit_exact else None,
    )
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m eventkit_loihi2.bench", description=__doc__.split("\n")[0])
    p.add_argument("--deploy-dir", help="benchmark a deployment (model.net + samples.npz)")
    p.add_argument("--samples", type=int, default=16)
    p.add_argument("--n-in", type=int, default=700)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--n-out", type=int, default=20)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--spikes", type=int, default=8000, help="input spikes per sample")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--lava-python", default=None)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    if args.deploy_dir:
        chip, data = _from_deploy(Path(args.deploy_dir))
    else:
        chip, data = synthetic(args.samples, args.n_in, args.hidden, args.n_out, args.steps, args.spikes)
    out = bench(chip, data, resolve_lava_python(args.lava_python), args.repeat)
    if args.json:
        print(json.dumps(out, indent=1))
        return 0
    rows = [
        ("model", f"{out['n_in']} -> {out['layers']}, {out['steps']} steps, " f"{out['samples']} samples"),
        ("machine", f"{out['machine']}, {out['cpus']} CPUs"),
        ("emulator", f"{out['emulator_seconds']:.4f} s ({out['emulator_ms_per_sample']:.3f} ms/sample)"),
    ]
    if "lava_seconds" in out:
        rows += [
            (
                "Lava Loihi2SimCfg",
                f"{out['lava_seconds']:.2f} s ({out['lava_ms_per_sample']:.1f} "
                f"ms/sample); with start-up {out['lava_total_seconds']:.2f} s",
            ),
            ("bit-exact", "yes" if out["bit_exact"] else "NO"),
            (
                "speed-up",
                f"{out['speedup']:.0f}x (incl. Lava start-up {out['speedup_vs_total']:.0f}x)"
                if out["speedup"]
                else "n/a (outputs differ)",
            ),
        ]
    else:
        rows.append(("Lava", out["lava"]))
    width = max(len(r[0]) for r in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
