"""How eventkit's neurons are written as NIR nodes: time units, the dt convention, gains.

eventkit's LIF (times in ms, :class:`eventkit.engine.LIF`)::

    tau_mem dV/dt = -V + I,   tau_syn dI/dt = -I,   a spike of weight w: I += w,   V > theta: V -> 0

NIR's CubaLIF::

    tau_syn dI/dt = -I + w_in S,   tau_mem dv/dt = (v_leak - v) + r I,   v > v_threshold: v -> v_reset

**dt convention.** The released importers (Norse, snnTorch, and the hardware toolchains built on
the same idea) simulate a graph with forward Euler on a grid of step dt and feed a spike as the
value 1 in the step it falls in, so one spike adds ``dt / tau_syn * w_in * w`` to I. The file is
written so that this is exactly eventkit's jump ``w``: ``w_in = tau_syn / dt``. A graph is
therefore tied to the dt it was trained at (stored in the graph metadata as ``dt``; importers do
not read it: pass it, e.g. ``norse.torch.from_nir(graph, dt=...)``). Read with Dirac-delta spikes
instead (area 1 per spike: I += w_in w / tau_syn), each spike of the same file would act 1 / dt
times more strongly; that is not the reading the importers implement.

**Conventions.**

``seconds`` (default): time constants, delays and dt in seconds (the importers' unit; NIR's own
documentation labels them ms, but no importer converts), ``r = 1``, ``v_threshold = theta``,
``v_reset = 0``, ``v_leak = 0``. v is eventkit's V.

``snntorch``: snnTorch 1.0.0 hard-codes dt = 1e-4 s and requires ``r = tau_mem / dt`` (its
Synaptic neuron adds the current to v without a ``dt / tau_mem`` factor). Times are written in a
unit in which one eventkit step lasts 1e-4 (``tau_file = tau / dt * 1e-4``), ``r = tau_mem / dt``
and ``v_threshold = theta * tau_mem / dt``: v is V scaled by ``tau_mem / dt``, which fires at the
same moments and leaves every classification (argmax of a sum, mean, maximum or positive-weighted
mean of v) unchanged. The same file runs in Norse with ``dt=1e-4``.
"""

from __future__ import annotations

from dataclasses import dataclass

CONVENTIONS = ("seconds", "snntorch")
#: snnTorch 1.0.0's hard-coded simulation step (seconds)
SNNTORCH_DT = 1e-4
#: a CubaLIF whose threshold is at least this never fires: the non-spiking readout of the
#: ``readout_as=cubalif`` compatibility option (read back as a leaky integrator)
NON_SPIKING_THRESHOLD = 1e30
READOUT_NODES = ("cubali", "cubalif")


@dataclass(frozen=True)
class Convention:
    """Units of one file. ``ms_per_unit``: milliseconds per file time unit; ``dt_ms``: the
    engine's step; ``scale_v``: True when v is written as V * tau_mem / dt (snntorch)."""

    name: str
    dt_ms: float
    ms_per_unit: float
    scale_v: bool

    @staticmethod
    def make(name: str, dt_ms: float) -> "Convention":
        if name == "seconds":
            return Convention(name, float(dt_ms), 1000.0, False)
        if name == "snntorch":
            return Convention(name, float(dt_ms), float(dt_ms) / SNNTORCH_DT, True)
        raise ValueError(f"convention must be one of {list(CONVENTIONS)}, got {name!r}")

    @property
    def dt(self) -> float:
        """The step in file units (what an importer must simulate with)."""
        return self.dt_ms / self.ms_per_unit

    def time(self, ms: float) -> float:
        """A time in ms, in file units."""
        return ms / self.ms_per_unit

    def r(self, tau_mem_ms: float) -> float:
        """The membrane gain r: 1, or tau_mem / dt (snntorch)."""
        return tau_mem_ms / self.dt_ms if self.scale_v else 1.0

    def metadata(self) -> dict:
        return {"convention": self.name, "dt": self.dt, "dt_ms": self.dt_ms, "ms_per_unit": self.ms_per_unit}


def snap(x: float) -> float:
    """A time constant read back from file units, rounded to 12 significant digits (undoes the
    last-bit error of the ms -> file unit -> ms conversion)."""
    return float(f"{x:.12g}")
