"""Every mutation of tests/mutations.py still names a line that exists exactly once, so a
refactor cannot silently turn a mutant into "missed (line gone)" until someone runs the slow
mutation check."""

from __future__ import annotations

from pathlib import Path

import pytest
from mutations import MUTATIONS

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("mutation", MUTATIONS, ids=lambda m: m.name)
def test_the_mutated_line_exists_once(mutation):
    lines = [line.strip() for line in (ROOT / mutation.path).read_text().splitlines()]
    assert lines.count(mutation.old) == 1, f"{mutation.name}: {mutation.old!r} in {mutation.path}"
    assert mutation.new != mutation.old
    for arg in mutation.tests:
        if arg.endswith(".py"):
            assert (ROOT / arg).is_file(), f"{mutation.name}: no test file {arg}"
