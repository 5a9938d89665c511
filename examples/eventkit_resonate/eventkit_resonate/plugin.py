"""Hook implementations: what this distribution adds to eventkit."""

from __future__ import annotations

from eventkit.plugin import hookimpl

from .model import ResonateAndFire


@hookimpl
def register_neurons(register):
    register("rf", ResonateAndFire, description="resonate-and-fire: a damped membrane oscillation (example plugin)")


@hookimpl
def register_config_dirs(register):
    register("pkg://eventkit_resonate.conf")
