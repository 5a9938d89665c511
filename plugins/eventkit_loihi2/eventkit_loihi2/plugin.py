"""Registers the ``loihi2`` target and this package's config directory with eventkit."""

from __future__ import annotations

from eventkit.plugin import hookimpl


def _make_target(**cfg):
    from .target import LoihiTarget

    return LoihiTarget(**cfg)


@hookimpl
def register_targets(register):
    register(
        "loihi2",
        _make_target,
        description="Intel Loihi 2: 8-bit quantisation, bit-accurate " "emulation, NetX export, check against Lava",
    )


def _readout_compartment(tau_mem: float = 20.0, tau_syn: float = 5.0, timing: str = "grid"):
    from .neuron import LoihiCUBA

    return LoihiCUBA(tau_mem=tau_mem, tau_syn=tau_syn, timing=timing, spiking=False)


@hookimpl
def register_neurons(register):
    from .neuron import LoihiCUBA

    register(
        "loihi_cuba", LoihiCUBA, description="Loihi 2 CUBA neuron in float (chip decays, " "one-step synaptic delay)"
    )
    register(
        "loihi_li",
        _readout_compartment,
        description="Loihi 2 non-spiking CUBA readout " "compartment in float (what the chip's readout layer computes)",
    )


@hookimpl
def register_config_dirs(register):
    register("pkg://eventkit_loihi2.conf")
