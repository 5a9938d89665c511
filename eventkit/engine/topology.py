"""The network as typed data: populations and the connections between them.

Every consumer (initialisation, the silent-neuron fix, quantisers, exporters, reports, the
backends' plans) iterates :attr:`Topology.connections`; nobody parses parameter names. A
connection's weight parameter is ``connection.name`` (shape ``(n_post, n_pre)``); a connection
with a delay also owns the parameter ``connection.delay_name`` (per-synapse delays in ms, same
shape).

Delays (``Delay``): a spike of presynaptic neuron i at time t reaches postsynaptic neuron j at
``t + d_ji``. ``mode="exact"`` keeps the arrival's position within its grid step (the loss is
differentiable in d between spike-count changes and the gradient is exact for the simulated
model); ``mode="round"`` shifts the arrival by ``round(d / dt)`` whole steps (the chip's and the
published GPU code's semantics) and passes the gradient evaluated at the rounded delay straight
through to the continuous d.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Mapping, Sequence

from .neurons import NeuronModel

KINDS = ("ff", "rec", "out")
DELAY_MODES = ("exact", "round")
# ring-buffer bytes per worker above which a max delay is refused (two float rows of the targets'
# state per slot, plus the adjoint history of the same length)
MAX_DELAY_BUFFER_BYTES = 2**30


@dataclass(frozen=True)
class Population:
    """A group of neurons of one model. ``index`` is its position in the simulated state (hidden
    layers 0.., then the output); the input population has index -1 and no model."""

    name: str
    size: int
    index: int
    model: NeuronModel | None = None

    @property
    def is_input(self) -> bool:
        return self.index < 0


@dataclass(frozen=True)
class Delay:
    """Per-synapse delays of one connection (all times in ms)."""

    max: float
    learn: bool = True
    mode: Literal["exact", "round"] = "exact"
    init: tuple[float, float] = (0.0, 0.0)  # uniform [lo, hi]; lo == hi: a constant

    def steps(self, dt: float) -> int:
        """The longest delay in whole grid steps, ceil(max / dt): an arrival lands at most this
        many grid times after its spike's step ends, so buffers hold steps + 1 grid times."""
        return int(math.ceil(self.max / dt - 1e-9))


@dataclass(frozen=True)
class Connection:
    """Dense synapses from ``pre`` to ``post``: weight parameter ``name`` of shape (n_post, n_pre)."""

    name: str
    pre: Population
    post: Population
    kind: Literal["ff", "rec", "out"]
    delay: Delay | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return (self.post.size, self.pre.size)

    @property
    def delay_name(self) -> str | None:
        """Name of the delay parameter (ms), or None for a connection without delays."""
        return f"{self.name}_delay" if self.delay is not None else None


@dataclass(frozen=True)
class Topology:
    """Input -> hidden layers (feed-forward chain, optional recurrence) -> output population."""

    input: Population
    hidden: tuple[Population, ...]
    output: Population
    connections: tuple[Connection, ...]

    @property
    def populations(self) -> tuple[Population, ...]:
        """The simulated populations in state order: hidden layers, then the output."""
        return (*self.hidden, self.output)

    @property
    def n_hidden_total(self) -> int:
        return sum(p.size for p in self.hidden)

    def connection(self, name: str) -> Connection:
        for c in self.connections:
            if c.name == name:
                return c
        raise KeyError(f"no connection {name!r}; connections: {[c.name for c in self.connections]}")

    @property
    def delayed(self) -> tuple[Connection, ...]:
        return tuple(c for c in self.connections if c.delay is not None)

    @staticmethod
    def build(
        n_in: int,
        n_out: int,
        hidden: Sequence[int],
        recurrent: Sequence[bool],
        neurons: Sequence[NeuronModel],
        output: NeuronModel,
        delays: Mapping[str, Delay] | None = None,
    ) -> "Topology":
        """The layered topology; ``delays`` maps a connection name (``ff0``, ``rec1``, ``out``) or
        a kind (``ff``, ``rec``, ``out``: every connection of that kind) to its :class:`Delay`;
        a name wins over its kind."""
        inp = Population("input", int(n_in), -1)
        pops = tuple(Population(f"hidden{k}", int(n), k, m) for k, (n, m) in enumerate(zip(hidden, neurons)))
        out = Population("output", int(n_out), len(pops), output)
        by_index = {-1: inp, **{p.index: p for p in (*pops, out)}}
        plain = [
            (name, by_index[a], by_index[b], kind)
            for name, kind, a, b in layered_connections([recurrent[k] for k in range(len(pops))])
        ]
        delays = dict(delays or {})
        names = {name for name, *_ in plain}
        unknown = sorted(set(delays) - names - set(KINDS))
        if unknown:
            raise ValueError(
                f"network.delays: no connection {unknown[0]!r} in this network; connections: "
                f"{sorted(names)} (or a kind: {list(KINDS)}). Fix: remove network.delays.{unknown[0]}"
            )
        for key, spec in delays.items():
            if spec is not None and key in KINDS and not any(kind == key for *_, kind in plain):
                raise ValueError(
                    f"network.delays.{key}: this network has no {key} connection "
                    f"(connections: {sorted(names)}). Fix: remove network.delays.{key}"
                )
        conns = tuple(Connection(name, a, b, kind, delays.get(name, delays.get(kind))) for name, a, b, kind in plain)
        return Topology(inp, pops, out, conns)


def layered_connections(recurrent: Sequence[bool]) -> tuple[tuple[str, str, int, int], ...]:
    """(name, kind, pre index, post index) of every connection of the layered network with one
    hidden layer per entry of ``recurrent`` (indices as :attr:`Population.index`: the input -1,
    hidden layers 0.., the output ``len(recurrent)``), in :attr:`Topology.connections` order."""
    out: list[tuple[str, str, int, int]] = []
    for k, rec in enumerate(recurrent):
        out.append((f"ff{k}", "ff", k - 1, k))
        if rec:
            out.append((f"rec{k}", "rec", k, k))
    out.append(("out", "out", len(recurrent) - 1, len(recurrent)))
    return tuple(out)


def parse_delays(spec: Mapping | None, where: str = "network.delays") -> dict[str, Delay]:
    """``{kind or connection name: {max, learn, mode, init}}`` (plain dicts, times in ms) ->
    :class:`Delay` objects, with one-line errors naming the key and the fix. ``init`` is a
    number (every delay starts there) or ``[lo, hi]`` / ``{uniform: [lo, hi]}``."""
    out: dict[str, Delay] = {}
    for key, value in dict(spec or {}).items():
        if value is None:
            continue
        if isinstance(value, Delay):
            out[key] = value
            continue
        at = f"{where}.{key}"
        if not isinstance(value, Mapping):
            raise ValueError(
                f"{at}: expected a mapping such as {{max: 62, learn: true, init: [0, 62]}}, " f"got {value!r}"
            )
        unknown = sorted(set(value) - {"max", "learn", "mode", "init"})
        if unknown:
            raise ValueError(
                f"{at}: unknown keys {unknown}; known: ['init', 'learn', 'max', 'mode']. "
                f"Fix: remove {at}.{unknown[0]}"
            )
        max_fix = f"{at}.max={_max_for(value.get('init')):g}"  # long enough for the init range
        if "max" not in value:
            raise ValueError(f"{at}.max is missing: the longest delay in ms. Fix: {max_fix}")
        mx = _finite(f"{at}.max", value["max"], fix=max_fix)
        if mx < 0:
            raise ValueError(f"{at}.max={mx}: a delay cannot be negative. Fix: {max_fix}")
        learn = value.get("learn", True)
        if not isinstance(learn, bool):
            raise ValueError(f"{at}.learn must be true or false, got {learn!r}")
        mode = value.get("mode", "exact")
        if mode not in DELAY_MODES:
            raise ValueError(f"{at}.mode={mode!r}: must be one of {list(DELAY_MODES)}. Fix: {at}.mode=exact")
        init = value.get("init", 0.0)
        # the fix writes the range in the form the config has it: a config holding
        # init: {uniform: [..]} cannot take init=[..] (Hydra does not merge a list into a mapping)
        init_key = f"{at}.init"
        if isinstance(init, Mapping):
            if set(init) != {"uniform"}:
                raise ValueError(
                    f"{at}.init: expected {{uniform: [lo, hi]}} or a number, got {dict(init)!r}. "
                    f"Fix: {at}.init.uniform=[0,{mx:g}]"
                )
            init, init_key = init["uniform"], f"{at}.init.uniform"
        fix = f"{init_key}=[0,{mx:g}]"
        if isinstance(init, (int, float)) and not isinstance(init, bool):
            lo = hi = _finite(init_key, init, fix=f"{init_key}=0")
        elif isinstance(init, Sequence) and not isinstance(init, str) and len(init) == 2:
            lo, hi = (_finite(init_key, x, fix=fix) for x in init)
        else:
            raise ValueError(f"{init_key}: expected a number or [lo, hi] in ms, got {init!r}. Fix: {fix}")
        if not 0 <= lo <= hi <= mx:
            raise ValueError(f"{init_key}=[{lo}, {hi}] must lie within [0, max={mx}] with lo <= hi. Fix: {fix}")
        out[key] = Delay(max=mx, learn=learn, mode=mode, init=(lo, hi))
    return out


def _max_for(init) -> float:
    """A max delay (ms) that holds ``init`` (as written in a config), for a fix to suggest: 62, or
    the top of the init range when that is larger and finite."""
    if isinstance(init, Mapping):
        init = init.get("uniform")
    values = init if isinstance(init, Sequence) and not isinstance(init, str) else [init]
    tops = [float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)]
    return max([62.0, *tops])


def _finite(key: str, value, fix: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{key} must be a finite number of ms, got {value!r}. Fix: {fix}")
    return float(value)
