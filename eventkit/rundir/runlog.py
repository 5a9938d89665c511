"""``<run dir>/eventkit.log``: every line a run prints, under that name however it was started.

While a run is active, :func:`capture` sends what the process writes to stdout and stderr to the
terminal as before and, line by line, to the log: epoch lines, notices, warnings, the resume
line, a target's messages, the error that stopped it. Terminal animation (a progress bar
redrawing itself with carriage returns or escape codes) is not copied; :func:`log_only` writes
the plain line that stands for it (one per epoch) to the log alone.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import IO, Iterator

LOG_NAME = "eventkit.log"

_active: list["_LogFile"] = []


class _LogFile:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.fh = open(path, "a", encoding="utf-8")

    def line(self, text: str) -> None:
        self.fh.write(text + "\n")
        self.fh.flush()

    def close(self) -> None:
        self.fh.close()


class _Tee:
    """A text stream that writes through to ``stream`` and copies complete lines to the log."""

    def __init__(self, stream: IO[str], log: _LogFile):
        self._stream, self._log, self._pending = stream, log, ""

    def write(self, text: str) -> int:
        n = self._stream.write(text)
        self._pending += text
        *lines, self._pending = self._pending.split("\n")
        for line in lines:
            if "\r" not in line and "\x1b" not in line:  # a redrawn bar's frames are not log lines
                self._log.line(line)
        return n

    def flush(self) -> None:
        self._stream.flush()

    def finish(self) -> None:
        if self._pending and "\r" not in self._pending and "\x1b" not in self._pending:
            self._log.line(self._pending)
        self._pending = ""

    def __getattr__(self, name: str):  # isatty, fileno, encoding, ... of the real stream
        return getattr(self._stream, name)


@contextlib.contextmanager
def capture(run_dir: Path) -> Iterator[Path]:
    """Copy stdout and stderr to ``run_dir / eventkit.log`` (appended: a resumed run continues
    its log) until the block ends."""
    path = Path(run_dir) / LOG_NAME
    log = _LogFile(path)
    out, err = _Tee(sys.stdout, log), _Tee(sys.stderr, log)
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    _active.append(log)
    try:
        yield path
    finally:
        _active.remove(log)
        sys.stdout, sys.stderr = saved
        out.finish()
        err.finish()
        log.close()


def log_only(text: str) -> None:
    """Write ``text`` to the active run's log but not to the terminal (the plain line that a
    progress bar stands for on the terminal). Nothing happens outside :func:`capture`."""
    for log in _active[-1:]:
        log.line(text)
