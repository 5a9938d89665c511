"""Run the exported network in a real Lava and compare its readout voltages with the emulator's.

The comparison is exact (integers, every sample, step and readout neuron); a mismatch names the
first differing sample, step and neuron so the cause can be found in one look.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

RUNNER = Path(__file__).with_name("lava_runner.py")
HW_UNAVAILABLE = 3  # lava_runner's exit status when lava-loihi is missing (lava_runner.HW_UNAVAILABLE)


class HardwareUnavailable(RuntimeError):
    """The Lava interpreter has no lava-loihi: the hardware step could not start. The message is
    the runner's one line saying what is missing and how to get it."""


@dataclass
class LavaComparison:
    samples: int
    steps: int
    bit_exact: bool
    mismatches: int
    first: dict | None = None  # sample, step, neuron, emulator, lava
    info: dict = field(default_factory=dict)

    def message(self) -> str:
        if self.bit_exact:
            return f"Lava and the emulator agree bit for bit on {self.samples} samples x " f"{self.steps} steps"
        f = self.first
        return (
            f"Lava and the emulator differ in {self.mismatches} readout values; first at "
            f"sample {f['sample']}, step {f['step']}, neuron {f['neuron']}: emulator "
            f"{f['emulator']}, Lava {f['lava']}"
        )


def compare(emulator_v: np.ndarray, lava_v: np.ndarray) -> LavaComparison:
    """Compare two int [N, T, n_out] voltage arrays exactly."""
    emulator_v, lava_v = np.asarray(emulator_v), np.asarray(lava_v)
    if emulator_v.shape != lava_v.shape:
        raise ValueError(f"voltage arrays differ in shape: emulator {emulator_v.shape}, " f"Lava {lava_v.shape}")
    diff = np.argwhere(emulator_v != lava_v)
    n, t = emulator_v.shape[:2]
    if diff.size == 0:
        return LavaComparison(n, t, True, 0)
    k, s, j = (int(x) for x in diff[0])  # argwhere is in C order: lowest sample, step, neuron
    first = dict(sample=k, step=s, neuron=j, emulator=int(emulator_v[k, s, j]), lava=int(lava_v[k, s, j]))
    return LavaComparison(n, t, False, int(len(diff)), first)


def run_lava(
    python: str,
    net_path: Path,
    samples_path: Path,
    out_path: Path,
    backend: str = "sim",
    timeout: float | None = None,
    samples_max: int | None = None,
    partition: str | None = None,
    board_chips: int = 1,
) -> dict:
    """Run :mod:`lava_runner` under the Lava interpreter; returns its info dict. Raises
    :class:`HardwareUnavailable` when ``backend="hw"`` and the interpreter has no lava-loihi."""
    cmd = [
        str(python),
        str(RUNNER),
        "--net",
        str(net_path),
        "--samples",
        str(samples_path),
        "--out",
        str(out_path),
        "--backend",
        backend,
    ]
    if samples_max is not None:
        cmd += ["--samples-max", str(int(samples_max))]
    if partition:
        cmd += ["--partition", str(partition)]
    if board_chips != 1:
        cmd += ["--board-chips", str(int(board_chips))]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise RuntimeError(
            f"the Lava run did not finish within {timeout} s; lower " "target.samples or raise target.lava_timeout"
        ) from None
    if proc.returncode == HW_UNAVAILABLE and backend == "hw":
        lines = proc.stderr.strip().splitlines()
        raise HardwareUnavailable(lines[-1] if lines else "Loihi 2 hardware not available (no lava-loihi)")
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-25:])
        raise RuntimeError(f"the Lava run failed (exit {proc.returncode}):\n{tail}\n" f"command: {' '.join(cmd)}")
    for line in reversed(proc.stdout.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    return {}


def check(
    python: str,
    net_path: Path,
    samples_path: Path,
    out_path: Path,
    backend: str = "sim",
    timeout: float | None = None,
    samples_max: int | None = None,
) -> LavaComparison:
    """Run Lava on ``samples.npz`` (its first ``samples_max``) and compare with the emulator
    voltages stored there."""
    info = run_lava(python, net_path, samples_path, out_path, backend, timeout, samples_max)
    with np.load(samples_path) as z:
        emu = z["v_out"][:samples_max]
    with np.load(out_path) as z:
        lava = z["v_out"]
    result = compare(emu, lava)
    result.info = info
    return result


def main(argv: list[str] | None = None) -> int:
    """``python -m eventkit_loihi2.lava_check DEPLOY_DIR``: re-run the check of a deployment."""
    import argparse

    from .lava_env import resolve_lava_python

    parser = argparse.ArgumentParser(prog="python -m eventkit_loihi2.lava_check")
    parser.add_argument("deploy_dir", help="a run's deploy/loihi2 directory")
    parser.add_argument("--python", help="Lava interpreter (default: the built environment)")
    parser.add_argument("--backend", default="sim", choices=("sim", "hw"))
    args = parser.parse_args(argv)
    d = Path(args.deploy_dir)
    py = resolve_lava_python(args.python)
    if py is None:
        print("no Lava environment: python -m eventkit_loihi2.lava_env build", file=sys.stderr)
        return 2
    res = check(py, d / "model.net", d / "samples.npz", d / "lava_voltages.npz", args.backend)
    print(res.message())
    return 0 if res.bit_exact else 1


if __name__ == "__main__":
    sys.exit(main())
