"""What ``trainer.reproducible=strict`` costs: ``python -m eventkit.bench.modes [--rounds R]
[--steps S] [--json PATH]``.

The workloads of ``python -m eventkit.bench`` (SHD-shaped random input, 700 channels, one
recurrent hidden layer of 256 or 1024 LIF neurons at about 14 Hz, dt 1 ms, batch 32, T 1000 and
500 steps) and of ``python -m eventkit.bench --delays`` (two feed-forward hidden layers of 256
with a learnable delay of up to 64 steps on every feed-forward synapse, T 1000), each train step
(forward, backward, Adam) timed in a process of each mode (the mode is a property of the process:
numba's flags and CPU name, numpy's and torch's dispatch). Rounds alternate strict and fast
processes, so that both see the same load on a shared machine; the time is the process's CPU
time per step (all its threads), the minimum over the rounds' steps.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

WORKLOADS = {
    "256 hidden, T 1000": dict(kind="engine", hidden=256, n_steps=1000),
    "1024 hidden, T 500": dict(kind="engine", hidden=1024, n_steps=500),
    "delays: 2 x 256, max 64 steps, T 1000": dict(kind="delays", hidden=256, n_steps=1000, max_delay=64),
}


def _job(spec: dict, steps: int, state: str) -> list[float]:
    """CPU seconds of each of ``steps`` train steps on ``spec``'s workload, in this process. The
    network is calibrated to the workload's spike rate once: by the first process, which saves
    its parameters to ``state``; the others load them (the same network in both modes)."""

    import torch

    from eventkit.bench.common import calibrated_net, cpu_step_seconds, keep_parameters, warm, workload

    torch.set_flush_denormal(True)
    data = workload(spec["n_steps"], 32, seed=1)
    from eventkit.engine import EventpropNet

    calibrated = not os.path.exists(state)  # else: the first process's network, loaded below
    if spec["kind"] == "engine":
        if calibrated:
            net, _ = calibrated_net(spec["hidden"], spec["n_steps"], data, 14.0)
        else:
            net = EventpropNet(700, 20, hidden=spec["hidden"], recurrent=True, n_steps=spec["n_steps"])
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    else:
        from eventkit.bench.delays import LR_POS, LR_W, TARGET_RATE, _calibrated_delay_net, _delay_config

        if calibrated:
            net, *_ = _calibrated_delay_net(spec["hidden"], spec["n_steps"], spec["max_delay"], True, data, TARGET_RATE)
        else:
            net = EventpropNet(
                700,
                20,
                hidden=[spec["hidden"]] * 2,
                recurrent=False,
                n_steps=spec["n_steps"],
                delays=_delay_config(True, spec["max_delay"]),
            )
        opt = torch.optim.Adam(net.param_groups(delay_lr=LR_POS), lr=LR_W)
    if calibrated:
        torch.save(net.state_dict(), state)
    else:
        net.load_state_dict(torch.load(state))
    labels = torch.as_tensor(data.labels)
    warm(net, data)
    restore = keep_parameters(net.parameters())  # every step from the calibrated network
    return [cpu_step_seconds(net, opt, data, labels, restore) for _ in range(steps)]


def _in_mode(mode: str, name: str, steps: int, state: str) -> list[float]:
    code = (
        "import json, sys\n"
        "from eventkit.base.reproducible import prepare_process\n"
        "prepare_process()\n"
        "from eventkit.bench.modes import WORKLOADS, _job\n"
        f"print(json.dumps(_job(WORKLOADS[{name!r}], {steps}, {state!r})))\n"
    )
    env = {**os.environ, "EVENTKIT_REPRODUCIBLE": mode}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{name} in {mode} mode failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eventkit.bench.modes", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="alternating strict/fast processes per workload")
    parser.add_argument("--steps", type=int, default=3, help="timed train steps per process")
    parser.add_argument("--only", help="run only the workloads whose name contains this text")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)
    rows = []
    print(f"{'workload':<40} {'strict s/step':>14} {'fast s/step':>12} {'strict/fast':>12}  (CPU time, min)")
    for name in WORKLOADS:
        if args.only and args.only not in name:
            continue
        times = {"strict": [], "fast": []}
        with tempfile.TemporaryDirectory() as tmp:
            state = os.path.join(tmp, "net.pt")
            for r in range(args.rounds):
                for mode in ("strict", "fast") if r % 2 == 0 else ("fast", "strict"):
                    times[mode] += _in_mode(mode, name, args.steps, state)
        strict, fast = min(times["strict"]), min(times["fast"])
        rows.append(dict(workload=name, strict_s=strict, fast_s=fast, ratio=strict / fast, samples=times))
        print(f"{name:<40} {strict:>14.3f} {fast:>12.3f} {strict / fast:>12.2f}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
