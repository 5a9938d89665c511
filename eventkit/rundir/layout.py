"""The run directory: everything a run leaves behind (the contract: docs/run-directory.md).

:class:`RunDir` owns the layout (the paths below), refuses directories that are unusable or hold
another run, and writes the run's status: config, metrics, summary. It delegates the rest:
every file is written atomically (:mod:`eventkit.base.files`), checkpoints are safetensors
(:mod:`eventkit.rundir.checkpoints`), manifest.json is :mod:`eventkit.rundir.manifest`, report.md and the plots
are :mod:`eventkit.running.report`.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from eventkit.base.files import json_default, write_json, write_text
from eventkit.rundir.manifest import manifest, now

CHECKPOINTS = "checkpoints"
LAST = "last.safetensors"
BEST = "best.safetensors"

#: what Hydra itself writes into a run directory before eventkit starts (besides ``*.log``, its
#: job log): not a sign that another run used the directory
HYDRA_OWN = (".hydra",)
#: the files a reader takes as a run's results, named first when a directory is refused
RESULTS = ("summary.json", "metrics.jsonl", "report.md", CHECKPOINTS)


@dataclass(frozen=True)
class DelayMetricKeys:
    """The metrics.jsonl keys of one delayed connection's delay statistics (ms, after each
    epoch): training writes them, the report reads them; nobody builds or parses the names."""

    mean: str
    std: str

    @classmethod
    def of(cls, connection: Any) -> "DelayMetricKeys":
        """The keys of ``connection`` (an :class:`eventkit.engine.Connection` with a delay):
        ``<connection>_delay_mean_ms`` and ``<connection>_delay_std_ms``."""
        return cls(f"{connection.delay_name}_mean_ms", f"{connection.delay_name}_std_ms")


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
        raise RunDirUnusable(f"{key}: cannot write into {probe} (permission denied). " f"Fix: choose a writable {key}")


def explain_os_error(err: OSError, run_dir: Path, key: str = "hydra.run.dir") -> RunDirUnusable | None:
    """One line for a write that failed for lack of space or permission, naming the path; None
    for any other OSError."""
    code = err.errno if err.errno is not None else (err.args[0] if err.args and isinstance(err.args[0], int) else None)
    where = err.filename or run_dir
    if code in (errno.ENOSPC, errno.EDQUOT):
        return RunDirUnusable(
            f"no space left on the device writing {where}. Fix: free space on that disk, "
            f"or choose {key} on a disk with room"
        )
    if code in (errno.EACCES, errno.EPERM, errno.EROFS):
        return RunDirUnusable(f"cannot write {where} ({os.strerror(code)}). Fix: choose a writable {key}")
    if code in (errno.EEXIST, errno.ENOTDIR):
        return RunDirUnusable(
            f"{key}: cannot create {where}: a file is in the way ({os.strerror(code)}). " f"Fix: choose another {key}"
        )
    return None


#: prefix of the folder (``.failed-<time>``) that keeps the record of a run that failed before
#: its first epoch when a new run takes its directory
FAILED_ASIDE = ".failed-"


def existing_run_files(path: Path, hydra_record: bool = False) -> list[str]:
    """Names in ``path`` that some earlier run left there, its results first: without Hydra's own
    record and log (those of this run, once Hydra has started it) unless ``hydra_record``, and
    without the folders that keep earlier failed runs (:data:`FAILED_ASIDE`)."""
    path = Path(path)
    if not path.is_dir():
        return []
    names = [
        p.name
        for p in path.iterdir()
        if not p.name.startswith(FAILED_ASIDE)
        and (hydra_record or (p.name not in HYDRA_OWN and not (p.suffix == ".log" and p.is_file())))
    ]
    return sorted(names, key=lambda n: (RESULTS.index(n) if n in RESULTS else len(RESULTS), n))


def failure(path: Path) -> str | None:
    """Why the run in ``path`` failed (summary.json's ``error``), or None when it did not fail."""
    summary = _read_json(Path(path) / "summary.json")
    if summary.get("status") != "failed":
        return None
    return str(summary.get("error") or "no reason recorded")


def epochs_done(path: Path) -> int:
    """How many epochs the run in ``path`` recorded (metrics.jsonl lines)."""
    try:
        text = (Path(path) / "metrics.jsonl").read_text()
    except OSError:
        return 0
    return sum(1 for line in text.splitlines() if line.strip())


def set_aside(path: Path, names: list[str]) -> Path:
    """Move ``names`` (files and folders in ``path``) into a new ``path/.failed-<time>/``, the
    time being when the run failed (summary.json written); returns that folder."""
    path = Path(path)
    summary = path / "summary.json"
    when = summary.stat().st_mtime if summary.is_file() else time.time()
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S", time.localtime(when))
    aside, n = path / f"{FAILED_ASIDE}{stamp}", 1
    while aside.exists():
        n += 1
        aside = path / f"{FAILED_ASIDE}{stamp}-{n}"
    aside.mkdir()
    for name in names:
        os.replace(path / name, aside / name)
    return aside


def check_unused(path: Path, resume: Any = None, key: str = "hydra.run.dir", hydra_record: bool = False) -> Path | None:
    """Make sure ``path`` holds no other run, so one directory never mixes two runs' files.
    A run that failed before its first epoch (a bad config, a missing file) has no results to
    lose: its files are moved into ``path/.failed-<time>/`` and that folder is returned (then this
    run takes the directory). Any other run is refused, unless this run resumes that very
    directory (``trainer.resume``). ``hydra_record``: Hydra's record (.hydra/) and log in
    ``path`` are the earlier run's (Hydra has not started this run yet), so they move too."""
    path = Path(path)
    found = existing_run_files(path)
    if not found or (resume and Path(str(resume)).resolve() == path.resolve()):
        return None
    error, epochs = failure(path), epochs_done(path)
    if error is not None and epochs == 0 and not (path / CHECKPOINTS / LAST).is_file():
        return set_aside(path, existing_run_files(path, hydra_record=hydra_record))
    shown = ", ".join(found[:4]) + (", ..." if len(found) > 4 else "")
    fix = f"choose another {key}"
    if (path / CHECKPOINTS / LAST).is_file():
        fix += f", or continue that run in place: python -m eventkit trainer.resume={path}"
    if error is not None:
        raise RunDirInUse(
            f"{key}: {path} already holds a FAILED run, which failed after {epochs} epoch"
            f"{'' if epochs == 1 else 's'} ({error}; {shown}). Fix: {fix}"
        )
    raise RunDirInUse(f"{key}: {path} already holds a run ({shown}). Fix: {fix}")


def set_aside_notice(aside: Path, key: str = "hydra.run.dir") -> str:
    """The line saying that an earlier failed run's record was moved to ``aside``."""
    return (
        f"{key}: {aside.parent} held a run that failed before its first epoch "
        f"({failure(aside)}); its record is kept in {aside}"
    )


class RunDir:
    """Writer for one run's directory. Always on, whatever external loggers are configured."""

    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise explain_os_error(err, self.path) or err from None
        remove_stale_temporaries(self.path)
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
        """A new manifest; a run resumed in its own directory keeps the earlier attempts' start,
        end, status and command line under ``attempts``."""
        self._manifest = manifest(seed, plugins)
        old = _read_json(self.path / "manifest.json")
        if old:
            earlier = {k: old.get(k) for k in ("start_time", "end_time", "status", "error", "argv") if k in old}
            self._manifest["attempts"] = [*old.get("attempts", []), earlier]
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

    def stage_seconds(self, name: str) -> float | None:
        """How long stage ``name`` took (None before it ended)."""
        return self._manifest.get("stages_s", {}).get(name)

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
        write_text(
            self.path / "metrics.jsonl", "".join(json.dumps(r, default=json_default) + "\n" for r in self.metrics)
        )

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


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def remove_stale_temporaries(run_dir: Path) -> list[Path]:
    """Delete the temporary files (``.<name>.tmp-<pid>``, :func:`eventkit.base.files.atomic_path`) that a
    killed process left in ``run_dir`` and its checkpoints; those of a live process stay."""
    removed = []
    for folder in (Path(run_dir), Path(run_dir) / CHECKPOINTS):
        if not folder.is_dir():
            continue
        for tmp in folder.glob(".*.tmp-*"):
            pid = tmp.name.rpartition(".tmp-")[2]
            if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
                tmp.unlink(missing_ok=True)
                removed.append(tmp)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def mark_continued(old: Path, new: Path) -> None:
    """Point the run in ``old`` at the directory that continues it (``trainer.resume=old`` with
    another ``hydra.run.dir``): summary.json and manifest.json get ``continued_in``, so a reader of
    ``old`` (a person, the sweep table) finds where its training went on."""
    new = Path(new).resolve()
    for name in ("summary.json", "manifest.json"):
        record = _read_json(Path(old) / name)
        if record or name == "summary.json":
            record.setdefault("status", "incomplete")
            record["continued_in"] = str(new)
            write_json(Path(old) / name, record)


def read_metrics(run_dir: Path) -> list[dict]:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
