"""The ``network`` config group: its schema and the EventpropNet built from it.

:class:`NetworkConfig` is the one place that reads ``network.*``: the hidden sizes and recurrence
per layer, the weight initialisation, the output neuron, the spike-count regulariser and the
delays. The app builds the network through :func:`build_network`; targets that must look at the
network before it exists (``Target.adapt``) read the same typed object.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Mapping

import torch

from eventkit.data import SpikeData
from eventkit.engine.topology import Delay, layered_connections, parse_delays
from eventkit.base.registry import Registry
from eventkit.base.schema import from_config, setting


@dataclass(frozen=True)
class InitConfig:
    """Initial weights ~ N(mean, std) per connection kind (feed-forward, recurrent, output)."""

    ff_mean: float = setting(example=0.0)
    ff_std: float = setting(ge=0, example=0.01)
    rec_mean: float = setting(example=0.0)
    rec_std: float = setting(ge=0, example=0.01)
    out_mean: float = setting(example=0.0)
    out_std: float = setting(ge=0, example=0.01)


@dataclass(frozen=True)
class RegularizerConfig:
    """Spike-count regulariser: strength/2 * sum_n (C_n - nu*B)^2 per hidden neuron."""

    strength: float = setting(ge=0, example=0.0)
    nu: float = setting(ge=0, example=14)


@dataclass(frozen=True)
class ConnectionDelay:
    """The delays one connection of the configured network gets: the connection's ``name``
    (``ff0``, ``rec1``, ``out``) and ``kind``, the hidden layer (or the output, index
    ``len(hidden)``) it feeds, the ``network.delays`` key that set them (the connection's name, or
    its kind for every connection of that kind), the :class:`Delay`, and whether the population
    it feeds has recurrence."""

    name: str
    kind: Literal["ff", "rec", "out"]
    post: int
    key: str
    delay: Delay
    into_recurrent: bool = False  # the population it feeds is a recurrent hidden layer


@dataclass(frozen=True)
class NetworkConfig:
    hidden: int | list[int] = setting(example=256)
    layers: int = setting(ge=1, example=1)
    recurrent: bool | list[bool] = setting(example="true")
    init: InitConfig = setting()
    output: dict = setting(example="{name: li}")
    regularizer: RegularizerConfig = setting()
    delays: dict | None = setting(None, example="{}")
    delay_lr: float = setting(0.1, example=0.1)
    learn_tau: dict | None = setting(None, example="{tau_mem: [5, 100]}")  # time constant -> clamp range (ms)
    tau_lr: float = setting(0.1, example=0.1)
    tau_per_neuron: bool = setting(False, example="true")  # learn_tau per neuron instead of per layer
    tau_init: str = setting("constant", example="log_uniform")  # per-neuron initial values: constant|log_uniform|gamma
    tau_gamma_shape: float = setting(3.0, example=3.0)  # the gamma init's shape k (mean: the neuron's value)
    from_file: str | None = setting(None, example="path/to/model.nir")  # a network file instead of the keys above

    def __post_init__(self):
        sizes = self.hidden if isinstance(self.hidden, list) else [self.hidden]
        for i, h in enumerate(sizes):
            if h < 1:
                at = f"hidden[{i}]" if isinstance(self.hidden, list) else "hidden"
                raise ValueError(f"{at}: must be >= 1 (neurons per layer), got {h}. Fix: network.hidden=256")
        if isinstance(self.hidden, list) and len(self.hidden) != self.layers:
            raise ValueError(
                f"hidden: lists {len(self.hidden)} layer sizes but network.layers={self.layers}. "
                f"Fix: network.layers={len(self.hidden)}"
            )
        if isinstance(self.recurrent, list) and len(self.recurrent) != self.layers:
            raise ValueError(
                f"recurrent: must be true/false or a list of {self.layers} booleans, got "
                f"{self.recurrent!r}. Fix: network.recurrent=true"
            )
        if not isinstance(self.output.get("name"), str):
            raise ValueError("output: needs a 'name' key choosing a registered neuron. Fix: network.output.name=li")
        if self.from_file is not None and not Path(self.from_file).is_file():
            raise ValueError(
                f"from_file: {self.from_file} is not a file. Fix: give the path of an existing "
                "network file (or network.from_file=null)"
            )
        delays = self.parsed_delays  # raises with the full key
        if any(d.learn for d in delays.values()) and not self.delay_lr > 0:
            raise ValueError(
                f"delay_lr: must be > 0 for learnable delays, got {self.delay_lr}. " "Fix: network.delay_lr=0.1"
            )
        if self.learn_tau and not self.tau_lr > 0:
            raise ValueError(
                f"tau_lr: must be > 0 for learnable time constants, got {self.tau_lr}. Fix: network.tau_lr=0.1"
            )

    @property
    def hidden_sizes(self) -> list[int]:
        """One size per hidden layer."""
        return list(self.hidden) if isinstance(self.hidden, list) else [self.hidden] * self.layers

    @property
    def recurrent_layers(self) -> list[bool]:
        """Whether each hidden layer has hidden->hidden recurrence."""
        return list(self.recurrent) if isinstance(self.recurrent, list) else [self.recurrent] * self.layers

    @property
    def parsed_delays(self) -> dict[str, Delay]:
        """``network.delays`` as written: a connection name or a kind -> :class:`Delay`."""
        return parse_delays(self.delays)

    @property
    def connection_delays(self) -> dict[str, ConnectionDelay]:
        """Connection name -> its :class:`ConnectionDelay`, for every connection of this network
        that ``network.delays`` gives delays (a name wins over its kind). A key naming no
        connection of this network is left out here; building the network refuses it."""
        return _by_connection(self.recurrent_layers, self.parsed_delays)

    @classmethod
    def of(cls, network: Any) -> "NetworkConfig":
        """``network`` (the ``network`` config node) read through this schema; a bad value raises
        :class:`eventkit.base.errors.ConfigError` naming the ``network.*`` key."""
        return from_config(cls, network, "network")


def _by_connection(recurrent: list[bool], written: dict[str, Delay]) -> dict[str, ConnectionDelay]:
    out = {}
    for name, kind, _, post in layered_connections(recurrent):
        key = name if name in written else kind if kind in written else None
        if key is not None:
            into = post < len(recurrent) and bool(recurrent[post])
            out[name] = ConnectionDelay(name, kind, post, key, written[key], into)
    return out


def adaptable_delays(network: Any) -> dict[str, ConnectionDelay]:
    """The delays a target's ``adapt`` decides on: ``NetworkConfig.of(network).connection_delays``.
    When ``network.*`` does not validate (validation reports why), the delays as written instead
    -- each entry's max, mode and init range as given, without the range checks, a malformed
    value as its default -- so that the target's problems come in the same message."""
    from eventkit.base.errors import ConfigError

    try:
        return NetworkConfig.of(network).connection_delays
    except ConfigError:
        pass
    layers, recurrent = network.get("layers", 1), network.get("recurrent", False)
    if isinstance(recurrent, bool):
        recurrent = [recurrent] * (layers if isinstance(layers, int) and layers > 0 else 1)
    written = {}
    for key, spec in dict(network.get("delays") or {}).items():
        if isinstance(spec, Mapping):
            written[key] = _as_written(spec)
    return _by_connection([bool(r) for r in recurrent or []], written)


def _as_written(spec: Any) -> Delay:
    def number(x, default: float) -> float:
        return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else default

    init = spec.get("init", 0.0)
    init = init.get("uniform") if isinstance(init, Mapping) else init
    try:
        lo, hi = (float(init), float(init)) if isinstance(init, (int, float)) else map(float, init)
    except (TypeError, ValueError):
        lo = hi = 0.0
    mode = spec.get("mode", "exact")
    return Delay(max=number(spec.get("max"), 0.0), mode=mode if mode in ("exact", "round") else "exact", init=(lo, hi))


def build_network(
    network: NetworkConfig,
    components: dict[str, Any],
    registry: Registry,
    data: SpikeData,
    seed: int,
    backend: str = "cpu",
):
    """EventpropNet for ``data``'s shape on the engine ``backend``; ``components`` holds the
    ``neuron`` and ``readout`` group configs (plain dicts with a ``name``)."""
    from eventkit.base.errors import ConfigError
    from eventkit.engine import EventpropNet

    readout = registry.build("readout", components["readout"])
    if network.from_file is not None:
        return _network_from_file(network.from_file, registry, readout, data, backend)
    neuron = registry.build("neuron", components["neuron"])
    output = registry.build("neuron", dict(network.output), where="network.output")
    try:
        return EventpropNet(
            n_in=data.n_channels,
            n_out=data.n_classes,
            hidden=network.hidden_sizes,
            recurrent=network.recurrent_layers,
            neuron=neuron,
            output=output,
            readout=readout,
            dt=data.dt,
            n_steps=data.n_steps,
            init=vars(network.init),
            delays=network.parsed_delays,
            generator=torch.Generator().manual_seed(seed),
            backend=backend,
            learn_tau=network.learn_tau,
            tau_per_neuron=network.tau_per_neuron,
            tau_init=network.tau_init,
            tau_gamma_shape=network.tau_gamma_shape,
        )
    except ValueError as exc:
        raise ConfigError(f"network: {exc}") from None


def _network_from_file(path: str, registry: Registry, readout: Any, data: SpikeData, backend: str):
    """The network stored at ``path``, read by the plugin registered for its suffix
    (``register_network_formats``), checked against the data's inputs and classes."""
    from eventkit.base.errors import ConfigError
    from eventkit.base.registry import RegistryError

    suffix = Path(path).suffix.lower()
    try:
        reader = registry.get("network_format", suffix).factory
    except RegistryError:
        known = ", ".join(registry.names("network_format")) or "none installed"
        raise ConfigError(
            f"network.from_file={path}: no reader for {suffix or 'files without a suffix'!r} "
            f"(readers: {known}). Fix: give a file of a known format, or install the "
            "plugin that reads it"
        ) from None
    try:
        net = reader(path, readout=readout, dt=data.dt, n_steps=data.n_steps, backend=backend)
    except ValueError as exc:
        raise ConfigError(f"network.from_file={path}: {exc}") from None
    for what, have, want in (("inputs", net.n_in, data.n_channels), ("outputs", net.n_out, data.n_classes)):
        if have != want:
            raise ConfigError(
                f"network.from_file={path}: the network has {have} {what}, the dataset "
                f"{want}. Fix: choose the dataset the network was made for"
            )
    return net
