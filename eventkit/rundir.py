"""The run directory: everything a run leaves behind (ARCHITECTURE section 6).

Every file is written to a temporary name in the same directory and renamed into place, so a run
that is killed (or a disk that fills up) never leaves a half-written checkpoint or summary: a
reader sees either the previous complete file or the new complete file. Checkpoints are
safetensors (plain tensors + JSON metadata), which cannot execute code when loaded.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from eventkit.files import atomic_path, json_default, write_json, write_text
from eventkit.manifest import manifest, now

CHECKPOINTS = "checkpoints"
LAST = "last.safetensors"
BEST = "best.safetensors"

#: what Hydra itself writes into a run directory before eventkit starts (besides ``*.log``, its
#: job log): not a sign that another run used the directory
HYDRA_OWN = (".hydra",)
#: the files a reader takes as a run's results, named first when a directory is refused
RESULTS = ("summary.json", "metrics.jsonl", "report.md", CHECKPOINTS)


class RunDirInUse(ValueError):
    """The run directory already holds another run's files; writing into it would leave that
    run's results (summary, report) looking like this run's."""


class RunDirUnusable(ValueError):
    """The run directory cannot be written: it is a file, not writable, or its disk is full."""


def check_usable(path: Path, key: str = "hydra.run.dir") -> None:
    """Refuse a run directory that is a file (or lies under one) or that cannot be written,
    before anything is written into it."""
    path = Path(path)
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        where = "" if probe == path else f" (it would lie under {probe}, which is a file)"
        raise RunDirUnusable(f"{key}: {path} is not a directory{where}. Fix: choose another {key}")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise RunDirUnusable(f"{key}: cannot write into {probe} (permission denied). "
                             f"Fix: choose a writable {key}")


def explain_os_error(err: OSError, run_dir: Path, key: str = "hydra.run.dir") -> RunDirUnusable | None:
    """One line for a write that failed for lack of space or permission, naming the path; None
    for any other OSError."""
    code = err.errno if err.errno is not None else (err.args[0] if err.args and isinstance(err.args[0], int) else None)
    where = err.filename or run_dir
    if code in (errno.ENOSPC, errno.EDQUOT):
        return RunDirUnusable(f"no space left on the device writing {where}. Fix: free space on that disk, "
                              f"or choose {key} on a disk with room")
    if code in (errno.EACCES, errno.EPERM, errno.EROFS):
        return RunDirUnusable(f"cannot write {where} ({os.strerror(code)}). Fix: choose a writable {key}")
    if code in (errno.EEXIST, errno.ENOTDIR):
        return RunDirUnusable(f"{key}: cannot create {where}: a file is in the way ({os.strerror(code)}). "
                              f"Fix: choose another {key}")
    return None


def existing_run_files(path: Path) -> list[str]:
    """Names in ``path`` that some earlier run left there (Hydra's own record and log excluded),
    its results first."""
    path = Path(path)
    if not path.is_dir():
        return []
    names = [p.name for p in path.iterdir() if p.name not in HYDRA_OWN and not (p.suffix == ".log" and p.is_file())]
    return sorted(names, key=lambda n: (RESULTS.index(n) if n in RESULTS else len(RESULTS), n))


def check_unused(path: Path, resume: Any = None, key: str = "hydra.run.dir") -> None:
    """Refuse a directory holding another run unless this run resumes that very directory
    (``trainer.resume``), so one directory never mixes two runs' files."""
    path = Path(path)
    found = existing_run_files(path)
    if not found or (resume and Path(str(resume)).resolve() == path.resolve()):
        return
    shown = ", ".join(found[:4]) + (", ..." if len(found) > 4 else "")
    fix = f"choose another {key}"
    if (path / CHECKPOINTS / LAST).is_file():
        fix += f", or continue that run with trainer.resume={path}"
    raise RunDirInUse(f"{key}: {path} already holds a run ({shown}). Fix: {fix}")


class RunDir:
    """Writer for one run's directory. Always on, whatever external loggers are configured."""

    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise explain_os_error(err, self.path) or err from None
        self.metrics: list[dict] = []
        #: the pipeline stage in progress (or where the run stopped), see :meth:`stage`
        self.current_stage: str | None = None
        self._manifest: dict = {}
        #: why an external logger stopped (the run went on without it); in manifest and summary
        self.logger_error: str | None = None
        self._summary: dict | None = None

    @property
    def checkpoints(self) -> Path:
        return self.path / CHECKPOINTS

    # ------------------------------------------------------------------ files
    def write_config(self, resolved_yaml: str) -> None:
        write_text(self.path / "config_resolved.yaml", resolved_yaml)

    def start_manifest(self, seed: int, plugins: list[dict]) -> None:
        self._manifest = manifest(seed, plugins)
        write_json(self.path / "manifest.json", self._manifest)

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time a pipeline stage into manifest.json (rewritten after each stage)."""
        t0 = time.perf_counter()
        self.current_stage = name
        try:
            yield
        finally:
            self._manifest.setdefault("stages_s", {})[name] = round(time.perf_counter() - t0, 3)
            write_json(self.path / "manifest.json", self._manifest)

    def finish_manifest(self, status: str = "ok", error: str | None = None) -> None:
        self._manifest["end_time"] = now()
        self._manifest["status"] = status
        if error is not None:
            self._manifest["error"] = error
        write_json(self.path / "manifest.json", self._manifest)

    def record_failure(self, error: str) -> None:
        """Write why the run stopped into summary.json and the manifest, so that no reader (the
        sweep table, a person) takes an unfinished run for a finished one."""
        if not self._manifest:  # it failed before its manifest was started (e.g. a config error)
            self._manifest = manifest(None, [])
        self.write_summary({"status": "failed", "error": error})
        self.finish_manifest("failed", error)

    def append_metrics(self, row: dict) -> None:
        """Add one epoch; the whole file is rewritten atomically (it is small), so it never ends
        in a partial line even if the process dies mid-write."""
        self.metrics.append(dict(row))
        self._write_metrics()

    def set_metrics(self, rows: list[dict]) -> None:
        self.metrics = [dict(r) for r in rows]
        self._write_metrics()

    def _write_metrics(self) -> None:
        write_text(self.path / "metrics.jsonl",
                   "".join(json.dumps(r, default=json_default) + "\n" for r in self.metrics))

    def write_summary(self, summary: dict) -> None:
        if self.logger_error is not None:
            summary["logger_error"] = self.logger_error
        self._summary = summary
        write_json(self.path / "summary.json", summary)

    def record_logger_error(self, error: str) -> None:
        """An external logger failed and was switched off: record why in manifest.json, and in
        summary.json if this run has written it already (else when it does)."""
        self.logger_error = error
        self._manifest["logger_error"] = error
        write_json(self.path / "manifest.json", self._manifest)
        if self._summary is not None:
            self.write_summary(self._summary)


def read_metrics(run_dir: Path) -> list[dict]:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# ------------------------------------------------------------------------- plots and report
def _savefig(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def plot_curves(metrics: list[dict], path: Path) -> None:
    """Loss, accuracy and learning rate per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [m["epoch"] for m in metrics]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for key, style in (("train_loss", "-"), ("val_loss", "--")):
        if any(key in m for m in metrics):
            axes[0].plot(epochs, [m.get(key, np.nan) for m in metrics], style, label=key)
    for key, style in (("train_accuracy", "-"), ("val_accuracy", "--")):
        if any(key in m for m in metrics):
            axes[1].plot(epochs, [m.get(key, np.nan) for m in metrics], style, label=key)
    axes[2].plot(epochs, [m["lr"] for m in metrics])
    axes[2].set_yscale("log")
    for ax, title in zip(axes, ("loss", "accuracy", "learning rate")):
        ax.set_title(title)
        ax.set_xlabel("epoch")
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    _savefig(fig, path)


def plot_raster(net: Any, data: Any, k: int, path: Path) -> None:
    """Input spikes, hidden spikes and output voltages of test sample ``k``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    one = data.subset([k])
    record = net.record(one)
    n_hidden = len(record.hidden)
    fig, axes = plt.subplots(2 + n_hidden, 1, figsize=(9, 2.2 * (2 + n_hidden)), sharex=True)
    steps, channels = one.sample(0)
    axes[0].scatter(steps * one.dt, channels, s=2, c="k")
    axes[0].set_ylabel("input")
    for layer, spikes in enumerate(record.hidden):
        axes[1 + layer].scatter(spikes[:, 1] * one.dt, spikes[:, 2], s=1, c="tab:blue")
        axes[1 + layer].set_ylabel(f"hidden {layer}")
    v = np.asarray(record.v_out)[0]
    t = np.arange(v.shape[0]) * one.dt
    for c in range(v.shape[1]):
        axes[-1].plot(t, v[:, c], lw=1.5 if c == one.labels[0] else 0.6,
                      label=f"class {c} (label)" if c == one.labels[0] else None)
    axes[-1].set_ylabel("output V")
    axes[-1].set_xlabel("time (ms)")
    axes[-1].legend(loc="upper right")
    axes[0].set_title(f"test sample {k}, label {one.labels[0]}")
    _savefig(fig, path)


def write_plots_and_report(rd: RunDir, net: Any, test: Any, summary: dict, cfg: Any) -> None:
    """plots/*.png and report.md (a human-readable page linking everything the run produced)."""
    plots = rd.path / "plots"
    plot_curves(rd.metrics, plots / "training_curves.png")
    plot_raster(net, test, 0, plots / "spike_raster.png")

    def pct(x):
        return "n/a" if x is None else f"{100 * x:.2f} %"

    lines = [
        f"# eventkit run: {cfg.dataset.name}",
        "",
        "| quantity | value |",
        "|---|---|",
        f"| test accuracy (best-val checkpoint) | {pct(summary['test_accuracy'])} |",
        f"| test accuracy (last epoch) | {pct(summary['last_test_accuracy'])} |",
        f"| best validation accuracy | {pct(summary['best_val_accuracy'])} (epoch {summary['best_epoch']}) |",
        f"| epochs | {summary['epochs']} |",
        f"| hidden spikes per test sample | {summary['test_spikes_per_sample']:.1f} |",
        f"| seed | {summary['seed']} |",
        "",
        f"Components: dataset `{cfg.dataset.name}`, neuron `{cfg.neuron.name}`, hidden {cfg.network.hidden} x "
        f"{cfg.network.layers} (recurrent: {cfg.network.recurrent}), readout `{cfg.readout.name}`, "
        f"loss `{cfg.loss.name}`, optimizer `{cfg.optimizer.name}`, schedule `{cfg.scheduler.name}`, "
        f"target `{cfg.target.name}`.",
        "",
    ]
    if summary.get("notices"):
        lines += ["## Notices", "", "The target changed these settings before training "
                  "(`config_resolved.yaml` holds the values that ran):", ""]
        lines += [f"- {n}" for n in summary["notices"]] + [""]
    lines += [
        "## Training curves",
        "",
        "![training curves](plots/training_curves.png)",
        "",
        "## Spike raster (test sample 0)",
        "",
        "![spike raster](plots/spike_raster.png)",
        "",
        "## Deployment",
        "",
    ]
    for name, fields in (summary.get("deploy") or {}).items():
        lines.append(f"### {name}")
        lines.append("")
        for key, value in fields.items():
            lines.append(f"- {key}: {value}")
        sub = rd.path / "deploy" / name / "report.md"
        if sub.exists():
            lines.append(f"- full report: [deploy/{name}/report.md](deploy/{name}/report.md)")
        lines.append("")
    lines += ["## Files", "",
              "`config_resolved.yaml` (every value used), `manifest.json` (versions, machine, timings), "
              "`metrics.jsonl` (one line per epoch), `summary.json`, `checkpoints/` (safetensors), `plots/`.", ""]
    write_text(rd.path / "report.md", "\n".join(lines))
