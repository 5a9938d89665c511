"""eventkit: train spiking neural networks with Eventprop, deploy them to Intel Loihi 2.

The public API is this one screen; everything else is an implementation module. Names are
imported on first use, so ``import eventkit`` stays fast and the CLI starts quickly.

    from eventkit import EventpropNet, LIF, LI, get_registry, compose, run
"""

from __future__ import annotations

import importlib
from typing import Any

from eventkit.base.version import __version__

_EXPORTS = {
    # engine: the network and its parts
    "EventpropNet": "eventkit.engine",
    "LIF": "eventkit.engine",
    "LI": "eventkit.engine",
    "NeuronModel": "eventkit.engine",
    "spike_count_regularizer": "eventkit.engine",
    # data: the spike format every dataset produces
    "SpikeData": "eventkit.data",
    "DatasetSplits": "eventkit.data",
    "from_samples": "eventkit.data",
    "concat": "eventkit.data",
    # plugins: hooks and the registry
    "hookimpl": "eventkit.base.hookspecs",
    "get_registry": "eventkit.base.registry",
    "Registry": "eventkit.base.registry",
    "RegistryError": "eventkit.base.registry",
    "Target": "eventkit.components.targets",
    # configs and runs
    "compose": "eventkit.running.config",
    "ConfigError": "eventkit.running.config",
    "run": "eventkit.running.pipeline",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'eventkit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
