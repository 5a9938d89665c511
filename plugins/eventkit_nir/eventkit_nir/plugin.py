"""Registers the ``nir`` target, the ``.nir`` network reader and this package's config directory."""

from __future__ import annotations

import sys

from eventkit.plugin import hookimpl


def _make_target(**cfg):
    from .target import NirTarget

    return NirTarget(**cfg)


def _read_network(path, *, readout, dt, n_steps, backend="cpu"):
    """The network in ``path``; prints one line naming the file's populations (its readout
    included) and one warning line per thing the run's dt cannot reproduce."""
    from .reader import import_nir

    imported = import_nir(path, readout=readout, dt=dt, n_steps=n_steps, backend=backend)
    print(f"nir: {path}: {imported.summary}", flush=True)
    for note in imported.notes:
        print(f"eventkit: warning: network.from_file={path}: {note}", file=sys.stderr, flush=True)
    return imported.net


@hookimpl
def register_targets(register):
    register(
        "nir",
        _make_target,
        description="NIR graph (deploy/nir/model.nir) for Norse, snnTorch and other NIR importers "
        "of current-based LIF networks",
    )


@hookimpl
def register_network_formats(register):
    register(".nir", _read_network, description="NIR graph (CubaLIF layers, CubaLI readout, Delay)")


@hookimpl
def register_config_dirs(register):
    register("pkg://eventkit_nir.conf")
