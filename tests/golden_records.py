"""Golden records of strict-mode runs: what ``trainer.reproducible=strict`` must give on every
x86-64 Linux machine with the pinned versions (tests/test_reproducible.py re-runs them and requires
equality, bit for bit).

Each record (``tests/golden/<name>.json``) holds the run's overrides, its metrics.jsonl rows (all
but the wall-clock ``epoch_time_s``), the summary's figures, and SHA-256 digests of the last and
best checkpoints' tensors (names, dtypes, shapes and bytes; safetensors' file header is not
hashed). The runs are the shipped recipes, shortened so that each takes seconds: the default
Yin-Yang run, ``+experiment=timing_delays`` (learned delays, exact mode) and the same with time
constants learned per neuron (the per-neuron kernels, delayed arrivals included); the 2-process gloo run
of the default is checked against the default's record, since the processes compute bit for bit
what one process computes.

Regenerate (only when a change is meant to change the numbers, and say so in the commit)::

    python tests/golden_records.py            # rewrites tests/golden/*.json
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
from pathlib import Path

GOLDEN = Path(__file__).resolve().parent / "golden"
RECORDS = {
    "default": [
        "dataset.n_train=600",
        "dataset.n_val=200",
        "dataset.n_test=200",
        "trainer.epochs=2",
        "trainer.progress=false",
    ],
    "timing_delays": [
        "+experiment=timing_delays",
        "dataset.n_train=320",
        "dataset.n_test=160",
        "trainer.epochs=2",
        "trainer.progress=false",
    ],
    "timing_delays_tau_per_neuron": [
        "+experiment=timing_delays",
        "network.learn_tau={tau_mem: [10, 100], tau_syn: [1, 9]}",
        "network.tau_per_neuron=true",
        "network.tau_init=gamma",
        "dataset.n_train=320",
        "dataset.n_test=160",
        "trainer.epochs=2",
        "trainer.progress=false",
    ],
}
SUMMARY_KEYS = (
    "test_accuracy",
    "test_loss",
    "last_test_accuracy",
    "best_val_accuracy",
    "best_epoch",
    "epochs",
    "test_spikes_per_sample",
)


def tensors_digest(path: Path) -> str:
    """SHA-256 of a checkpoint's tensors (sorted by name: name, dtype, shape, bytes)."""
    from eventkit.rundir.checkpoints import load_checkpoint

    tensors, _ = load_checkpoint(path)
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def record(run: Path, overrides: list[str]) -> dict:
    """What a finished run directory must reproduce."""
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    for row in rows:
        row.pop("epoch_time_s", None)
    summary = json.loads((run / "summary.json").read_text())
    return {
        "overrides": overrides,
        "metrics": rows,
        "summary": {k: summary[k] for k in SUMMARY_KEYS},
        "last_checkpoint_sha256": tensors_digest(run / "checkpoints" / "last.safetensors"),
        "best_checkpoint_sha256": tensors_digest(run / "checkpoints" / "best.safetensors"),
    }


def load(name: str) -> dict:
    return json.loads((GOLDEN / f"{name}.json").read_text())


def main() -> int:
    from eventkit.base.reproducible import prepare_process

    prepare_process(["trainer.reproducible=strict"])
    from eventkit.running.pipeline import run
    from eventkit.running.config import compose

    GOLDEN.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name, overrides in RECORDS.items():
            path = Path(tmp) / name
            run(compose(overrides), path)
            (GOLDEN / f"{name}.json").write_text(json.dumps(record(path, overrides), indent=1) + "\n")
            print(f"wrote {GOLDEN / name}.json", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
