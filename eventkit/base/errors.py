"""The error every layer raises for a bad config: it names the key, what is wrong and the fix.

It lives at the bottom of the house (it imports nothing from eventkit), so the engine's
validation, the schema helpers, the training loop and the config layer all raise the same type.
"""

from __future__ import annotations

import re
from typing import Sequence


class ConfigError(ValueError):
    """The composed config is invalid; the message names the key and the fix.

    One error may hold several problems (``ConfigError(first, second)``), found by different
    checks of the same config, so that a user fixes them in one go rather than one run each. Its
    message is then one line per problem and, when every problem's fix is a set of overrides, one
    ``Fix:`` line that applies them all (a later problem's override of the same key wins: the
    checks run in the order config -> target, and a target's fix accounts for the config's)."""

    def __init__(self, *problems: str):
        problems = tuple(dict.fromkeys(str(p).strip() for p in problems if str(p).strip()))
        self.problems: tuple[str, ...] = problems
        super().__init__(_problems_message(problems))

    def __reduce__(self):  # picklable with its problems (sweep launchers send errors across processes)
        return (type(self), self.problems)


#: ``Fix: key=value key2=value2`` -- a fix that is a set of overrides
_OVERRIDE = r"~[A-Za-z_][\w.@/\[\]-]*(=\S+)?|\+?[A-Za-z_][\w.@/\[\]-]*=\S+"


def fix_overrides(problem: str) -> list[str] | None:
    """The overrides a problem's ``Fix:`` starts with (``Fix: network.delays.ff.max=62
    network.delays.ff.init.uniform=[0,62] (or ...)``: the first two); None when the fix does not
    start with an override (it is advice, e.g. "Fix: free space on that disk")."""
    _, sep, fix = str(problem).rpartition("Fix: ")
    if not sep:
        return None
    tokens = []
    for token in fix.strip().split():
        token = token.rstrip(",;")
        if not re.fullmatch(_OVERRIDE, token):
            break
        tokens.append(token)
    return tokens or None


def _problems_message(problems: Sequence[str]) -> str:
    if len(problems) <= 1:
        return problems[0] if problems else "invalid config"
    lines = [f"{len(problems)} problems in this config:"] + [f"  - {p}" for p in problems]
    fixes = [fix_overrides(p) for p in problems]
    if all(f is not None for f in fixes):
        merged: dict[str, str] = {}
        for fix in fixes:
            for override in fix or ():
                merged[override.split("=", 1)[0].lstrip("+~")] = override
        lines.append(f"Fix (all at once): {' '.join(merged.values())}")
    return "\n".join(lines)
