"""Every mutation of tests/mutations.py still names a line that exists exactly once, so a
refactor cannot silently turn a mutant into "missed (line gone)" until someone runs the slow
mutation check."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _mutations():
    spec = importlib.util.spec_from_file_location("mutations", ROOT / "tests" / "mutations.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("mutations", module)
    spec.loader.exec_module(module)
    return module.MUTATIONS


@pytest.mark.parametrize("mutation", _mutations(), ids=lambda m: m.name)
def test_the_mutated_line_exists_once(mutation):
    lines = [line.strip() for line in (ROOT / mutation.path).read_text().splitlines()]
    assert lines.count(mutation.old) == 1, f"{mutation.name}: {mutation.old!r} in {mutation.path}"
    assert mutation.new != mutation.old
    for arg in mutation.tests:
        if arg.endswith(".py"):
            assert (ROOT / arg).is_file(), f"{mutation.name}: no test file {arg}"
