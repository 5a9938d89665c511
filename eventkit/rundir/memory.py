"""The run directory as data-parallel processes other than rank 0 see it: the same records,
kept in memory (rank 0 alone writes the run directory)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

from eventkit.rundir.layout import RunDir


class MemoryRunDir(RunDir):
    """The run directory as ranks other than 0 see it: the same records (metrics, stage, manifest)
    kept in memory, nothing written to disk, not even the directory."""

    def __init__(self, path: Path):  # noqa: D107 - no mkdir, unlike RunDir
        self.path = Path(path)
        self.metrics = []
        self.current_stage = None
        self._manifest = {}
        self.logger_error = None
        self._summary = None

    def write_config(self, resolved_yaml: str) -> None:
        pass

    def start_manifest(self, seed: int, plugins: list[dict]) -> None:
        self._manifest = {"seed": seed, "stages_s": {}}

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        self.current_stage = name
        yield

    def finish_manifest(self, status: str = "ok", error: str | None = None) -> None:
        self._manifest.update(status=status, error=error)

    def _write_metrics(self) -> None:
        pass

    def write_summary(self, summary: dict) -> None:
        self._summary = summary

    def record_logger_error(self, error: str) -> None:
        self.logger_error = error
