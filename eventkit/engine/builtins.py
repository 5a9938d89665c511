"""Registers the engine's built-in neuron models and readouts through the ordinary hooks."""

from ..base.hookspecs import hookimpl
from .neurons import ALIF, LI, LIF
from .readouts import READOUTS


@hookimpl
def register_neurons(register):
    register("lif", LIF, description="LIF, exponential current synapses, exact per-step integration")
    register("li", LI, description="non-spiking leaky integrator (readout)")
    register("alif", ALIF, description="adaptive-threshold LIF (threshold rises at each spike, relaxes with tau_adapt)")


@hookimpl
def register_readouts(register):
    for name, cls in READOUTS.items():
        register(name, cls, description=(cls.__doc__ or "").strip().splitlines()[0])
