"""The CPU kernels index inside their arrays: the same runs compiled with numba's bounds checks
(``NUMBA_BOUNDSCHECK=1``, two worker threads, a kernel cache of their own) give the same spikes and
gradients as the normal build.

An index past an array's end raises IndexError under the checks. Inside a ``prange`` worker that
error does not reach the caller: the sample's work stops where it was raised, so the run's spikes
and gradients come out different (this is how a row of the delay window taken by every worker
thread of a network without delays, one row long, was found). Fails on any such index in the
paths the cases run: plain LIF, fractional delays on every connection kind, per-neuron time
constants with delays, ALIF, a model given by its description with delays.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

CASES = ("lif", "lif_delays", "tau_per_neuron_delays", "alif", "described_delays")

SCRIPT = """
import json, sys
sys.path.insert(0, {tests!r})
from test_kernels_in_bounds import run_case
print(json.dumps({{name: run_case(name) for name in {cases!r}}}))
"""


def run_case(name: str) -> dict:
    """Forward and backward of one small float64 network on 6 samples: its spike count and every
    parameter's gradient (lists, for JSON)."""
    import torch

    from eventkit.engine import ALIF, LI, Delay, EventpropNet
    from eventkit.plugin.testing import random_data
    from engine_cases import Oscillator

    delays = {kind: Delay(max=6.0, init=(0.0, 6.0), mode="exact") for kind in ("ff", "rec", "out")}
    options = {
        "lif": {},
        "lif_delays": dict(delays=delays),
        "tau_per_neuron_delays": dict(
            delays=delays, learn_tau={"tau_mem": [10.0, 40.0], "tau_syn": [2.0, 9.0]}, tau_per_neuron=True
        ),
        "alif": dict(neuron=ALIF(tau_adapt=50.0, adapt_step=0.3)),
        "described_delays": dict(neuron=Oscillator(), output=LI(), delays=delays),
    }[name]
    net = EventpropNet(
        10,
        4,
        hidden=[20, 15],
        recurrent=True,
        n_steps=80,
        dtype=torch.float64,
        init=dict(ff_mean=0.8, ff_std=0.4, rec_mean=0.0, rec_std=0.2, out_mean=0.2, out_std=0.3),
        generator=torch.Generator().manual_seed(0),
        **options,
    )
    data = random_data(np.random.default_rng(1), 6, 10, 80, rate=(60, 100))
    out = net(data)
    loss = (out.trace**2).sum() * 0.1 + out.readout.sum() + 0.01 * out.counts.sum()
    loss.backward()
    grads = {n: p.grad.detach().numpy().ravel().tolist() for n, p in net.named_parameters()}
    return {"spikes": float(out.counts.detach().sum()), "grads": grads}


@pytest.mark.slow
def test_kernels_compiled_with_bounds_checks_give_the_same_results(tmp_path):
    tests = str(Path(__file__).resolve().parent)
    env = {
        **os.environ,
        "NUMBA_BOUNDSCHECK": "1",
        "NUMBA_NUM_THREADS": "2",
        "NUMBA_CACHE_DIR": str(tmp_path / "numba-cache"),  # compiled afresh with the checks
    }
    child = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(tests=tests, cases=CASES)],
        capture_output=True,
        text=True,
        timeout=1800,
        env=env,
    )
    assert child.returncode == 0, child.stderr[-4000:]
    checked = json.loads(child.stdout.strip().splitlines()[-1])
    for name in CASES:
        plain = run_case(name)
        assert plain["spikes"] > 100, name
        assert checked[name]["spikes"] == plain["spikes"], name
        for param, g in plain["grads"].items():
            g = np.asarray(g)
            assert np.abs(g).max() > 0, (name, param)
            np.testing.assert_allclose(
                checked[name]["grads"][param], g, rtol=1e-9, atol=1e-12 * np.abs(g).max(), err_msg=f"{name} {param}"
            )
