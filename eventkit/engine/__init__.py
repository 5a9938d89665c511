"""The Eventprop engine: event-driven, sample-parallel simulation with Eventprop gradients
(which of them are exact: docs/engine.md, "What is exact").

    net = EventpropNet(n_in=700, n_out=20, hidden=256, recurrent=True,
                       delays={"ff": Delay(max=62, init=(0, 62))})       # delays optional
    out = net(batch)                      # batch: eventkit.data.SpikeData
    loss = F.cross_entropy(out.readout, labels) + spike_count_regularizer(out.counts, 1e-9, 14)
    loss.backward()                       # Eventprop gradients in net.parameters()
"""

from .backends import Backend, get_backend
from .network import EngineOutput, EventpropNet, FakeQuant, Record, Simulation, spike_count_regularizer
from .neurons import ALIF, LI, LIF, Coefficients, Described, NeuronModel
from .readouts import ExpWeightedMeanV, FirstSpike, MaxV, MeanV, PerStepV, Readout, SumV
from .topology import Connection, Delay, Population, Topology, parse_delays

__all__ = [
    "EventpropNet",
    "EngineOutput",
    "FakeQuant",
    "Record",
    "Simulation",
    "spike_count_regularizer",
    "Topology",
    "Population",
    "Connection",
    "Delay",
    "parse_delays",
    "Backend",
    "get_backend",
    "NeuronModel",
    "LIF",
    "ALIF",
    "LI",
    "Described",
    "Coefficients",
    "Readout",
    "SumV",
    "MeanV",
    "ExpWeightedMeanV",
    "MaxV",
    "FirstSpike",
    "PerStepV",
]
