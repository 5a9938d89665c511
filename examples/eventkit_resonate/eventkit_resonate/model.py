"""A resonate-and-fire neuron (Izhikevich 2001) with a current synapse, declared as data.

The membrane is a damped oscillator ``z = x + i y`` driven by an exponential synaptic current::

    dz/dt = (-1/tau + i omega) z + I / tau        omega = 2 pi frequency
    tau_syn dI/dt = -I                           a spike of weight w: I <- I + w

It fires when ``y`` (the oscillation's quadrature) crosses ``threshold``; ``z`` then restarts
from 0 and ``I`` is kept. Input that arrives in phase with the oscillation builds it up, input out
of phase cancels it: the neuron prefers input intervals near its period ``1/frequency``.

Written as the real linear system eventkit simulates (states ``x, y, i``)::

    d/dt [x, y, i] = [[-1/tau, -omega, 1/tau], [omega, -1/tau, 0], [0, 0, -1/tau_syn]] [x, y, i]

Nothing else is needed: the engine integrates it exactly on its grid and computes exact
Eventprop gradients from this description (the walk-through: docs/writing-a-neuron-model.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from eventkit.plugin import LinearDynamics, NeuronModel, check_positive


@dataclass(frozen=True)
class ResonateAndFire(NeuronModel):
    frequency: float = 50.0  # Hz: the oscillation of the membrane
    tau: float = 20.0  # ms: the oscillation's decay
    tau_syn: float = 5.0  # ms
    threshold: float = 0.5

    name = "rf"
    learnable = ("frequency", "tau", "tau_syn")  # network.learn_tau may train these, per layer

    def __post_init__(self):
        check_positive("rf", frequency=self.frequency, tau=self.tau, tau_syn=self.tau_syn, threshold=self.threshold)

    def dynamics(self) -> LinearDynamics:
        omega = 2.0 * math.pi * self.frequency / 1000.0  # rad per ms
        return LinearDynamics(
            states=("x", "y", "i"),
            matrix=[
                [-1.0 / self.tau, -omega, 1.0 / self.tau],
                [omega, -1.0 / self.tau, 0.0],
                [0.0, 0.0, -1.0 / self.tau_syn],
            ],
            input={"i": 1.0},
            threshold={"y": 1.0},
            theta=self.threshold,
            reset={"x": 0.0, "y": 0.0},
            membrane="y",
            count_scale=self.tau,
            model=self.name,
        )
