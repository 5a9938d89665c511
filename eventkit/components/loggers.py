"""Metric loggers: the Logger protocol, the built-in ``none`` logger, and the guard that keeps a
failing logger from stopping training. The run directory itself is always written, whatever
logger is configured (:mod:`eventkit.rundir.layout`)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable, Protocol

from eventkit.base.hookspecs import hookimpl


class Logger(Protocol):
    """Receives the resolved config once, every epoch's metrics, and the final summary.
    The run-directory writer is always on; loggers add external destinations."""

    def start(self, run_dir: Path, config: dict) -> None: ...
    def log(self, metrics: dict, step: int) -> None: ...
    def finish(self, summary: dict) -> None: ...


class NullLogger:
    """No external logging (the run directory still records everything)."""

    def start(self, run_dir: Path, config: dict) -> None:
        pass

    def log(self, metrics: dict, step: int) -> None:
        pass

    def finish(self, summary: dict) -> None:
        pass


class GuardedLogger:
    """Wraps a logger so that its failure never stops training: the first error is reported
    on stderr (and passed to ``on_failure``, which records it in the run directory) and the
    logger is switched off for the rest of the run."""

    def __init__(self, logger: Logger, name: str, on_failure: Callable[[str], None] | None = None):
        self.logger, self.name, self.failed, self.on_failure = logger, name, None, on_failure

    def _call(self, method: str, *args) -> None:
        if self.failed is not None:
            return
        try:
            getattr(self.logger, method)(*args)
        except Exception as exc:  # logging must never kill training
            self.failed = f"{type(exc).__name__}: {exc}"
            print(
                f"eventkit: logger {self.name!r} failed in {method}() and is switched off: {self.failed}",
                file=sys.stderr,
            )
            if self.on_failure is not None:
                try:
                    self.on_failure(f"logger {self.name!r} failed in {method}(): {self.failed}")
                except OSError:  # a full disk must not stop training either
                    pass

    def start(self, run_dir: Path, config: dict) -> None:
        self._call("start", run_dir, config)

    def log(self, metrics: dict, step: int) -> None:
        self._call("log", metrics, step)

    def finish(self, summary: dict) -> None:
        self._call("finish", summary)


@hookimpl
def register_loggers(register):
    register("none", NullLogger, "no external logger (run directory only)")
