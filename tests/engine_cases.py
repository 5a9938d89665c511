"""Cases shared by the engine's gradient tests: the small input pattern the continuous-time
references run, the engine network and data that match them, and the central-difference check
of scalar parameters, and a model that only the description-driven kernels run (``Oscillator``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from eventkit.data import from_samples
from eventkit.engine import EventpropNet, MeanV, NeuronModel
from eventkit.engine.dynamics import LinearDynamics
from eventkit.plugin.testing import finite_difference_check, spike_pattern

DURATION = 40.0
TIMES = np.array([0, 1, 2, 3, 5, 6, 8, 10, 11, 14, 15, 19, 22, 25, 28], dtype=float)
CHANNELS = np.array([0, 1, 2, 3, 0, 2, 1, 3, 0, 1, 2, 0, 3, 1, 2])
LABEL = 1


def reference_case(dt: float, weights: dict, **net_options):
    """(net, data): the references' 4 -> 5 recurrent -> 2 network (mean_v readout, float64) at
    ``dt`` with ``weights`` copied in, and the input pattern on its grid."""
    n_steps = int(round(DURATION / dt))
    steps = np.round(TIMES / dt).astype(int)
    data = from_samples([(steps, CHANNELS)], [LABEL], n_channels=4, n_steps=n_steps, dt=dt, n_classes=2)
    net = EventpropNet(
        4, 2, hidden=5, recurrent=True, readout=MeanV(), dt=dt, n_steps=n_steps, dtype=torch.float64, **net_options
    )
    with torch.no_grad():
        for name, arr in weights.items():
            getattr(net, name).copy_(torch.tensor(arr))
    return net, data


def assert_scalar_gradients_match(params, loss_and_counts, counts: float, min_fd: float) -> None:
    """Every scalar parameter's ``.grad`` against a central difference (step 1e-7 relative) of
    ``loss_and_counts() -> (loss, spike count)``: relative error <= 1e-3, the spike count
    unchanged by each perturbation, and ``|fd| > min_fd``."""
    for p in params:
        h = 1e-7 * p.item()
        values = []
        with torch.no_grad():
            for sign in (1, -1):
                p += sign * h
                lo, c = loss_and_counts()
                p -= sign * h
                assert c == counts, "the perturbation changed a spike count"
                values.append(lo.item())
        fd = (values[0] - values[1]) / (2 * h)
        assert abs(fd) > min_fd
        assert abs(p.grad.item() - fd) <= 1e-3 * abs(fd), (p.grad.item(), fd)


def assert_cross_entropy_gradients_match(net, data, rng, min_checked: int) -> None:
    """The weight gradients of cross-entropy on ``3 x readout`` against central differences of the
    simulator (:func:`finite_difference_check`): at least ``min_checked`` entries, not all zero,
    relative error <= 1e-3."""
    labels = torch.as_tensor(data.labels)
    engine, fd = finite_difference_check(net, data, lambda o: F.cross_entropy(o.readout * 3.0, labels), rng)
    assert len(engine) >= min_checked and np.abs(fd).max() > 0
    assert np.linalg.norm(engine - fd) / np.linalg.norm(fd) <= 1e-3


def constant_gradients_against_fd(net, data, loss_fn, names) -> dict:
    """{name: (engine, central difference)} of scalar parameters. The step is 1e-6 of the value,
    or 3e-7, 1e-7, 3e-8 where a smaller one is needed: the first at which neither it nor a quarter
    of it changes a spike (step and neuron) and the two central differences agree to 2e-6 plus
    the smaller step's rounding (a discontinuity the spike pattern does not show, such as a
    delayed arrival moving to the next grid time, makes them differ; where they agree, it moves
    the first by at most that much); None where no step qualifies."""
    net.zero_grad()
    loss_fn(net(data)).backward()
    base = spike_pattern(net, data)
    with torch.no_grad():
        f0 = abs(loss_fn(net(data)).item())

    def central(p, x, eps):
        values, same = [], True
        for sign in (1, -1):
            with torch.no_grad():
                p.fill_(x + sign * eps)
                values.append(loss_fn(net(data)).item())
                same &= spike_pattern(net, data) == base
                p.fill_(x)
        return (values[0] - values[1]) / (2 * eps), same

    out = {}
    for name in names:
        p = getattr(net, name)
        x = float(p.detach())
        out[name] = None
        for rel in (1e-6, 3e-7, 1e-7, 3e-8):
            eps = rel * abs(x)
            (c1, same1), (c2, same2) = central(p, x, eps), central(p, x, eps / 4)
            rounding = 4e-16 * max(1.0, f0) / (eps / 4)
            if same1 and same2 and abs(c1 - c2) <= 2e-6 * abs(c1) + rounding:
                out[name] = (p.grad.item(), c1)
                break
    return out


@dataclass(frozen=True)
class Oscillator(NeuronModel):
    """A damped oscillator (x, y) driven by a synaptic current, firing on y: complex eigenvalues,
    three states, a threshold on a state no input reaches directly."""

    omega: float = 0.25  # rad/ms
    tau: float = 15.0
    tau_syn: float = 4.0
    gain: float = 1.0  # what a spike of weight 1 adds to i
    level: float = 0.5  # the threshold on y
    rest: float = 0.0  # the value a spike resets y to
    spiking = True
    name = "oscillator"
    learnable = ("omega", "tau", "tau_syn", "gain", "level", "rest")

    def dynamics(self):
        return LinearDynamics(
            states=("x", "y", "i"),
            matrix=[
                [-1 / self.tau, -self.omega, 1 / self.tau],
                [self.omega, -1 / self.tau, 0.0],
                [0, 0, -1 / self.tau_syn],
            ],
            input={"i": self.gain},
            threshold={"y": 1.0},
            theta=self.level,
            reset={"x": 0.0, "y": self.rest},
            membrane="y",
            count_scale=self.tau,
            model=self.name,
        )
