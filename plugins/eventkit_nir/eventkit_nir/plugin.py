"""Registers the ``nir`` target, the ``.nir`` network reader and this package's config directory."""

from __future__ import annotations

from eventkit.hookspecs import hookimpl


def _make_target(**cfg):
    from .target import NirTarget

    return NirTarget(**cfg)


def _read_network(path, *, readout, dt, n_steps, backend="cpu"):
    from .reader import network_from_nir

    return network_from_nir(path, readout=readout, dt=dt, n_steps=n_steps, backend=backend)


@hookimpl
def register_targets(register):
    register(
        "nir",
        _make_target,
        description="NIR graph (deploy/nir/model.nir) for SpiNNaker2, Xylo, "
        "Speck, Norse, snnTorch and other NIR importers",
    )


@hookimpl
def register_network_formats(register):
    register(".nir", _read_network, description="NIR graph (CubaLIF layers, CubaLI readout, Delay)")


@hookimpl
def register_config_dirs(register):
    register("pkg://eventkit_nir.conf")
