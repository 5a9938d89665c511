"""The plugin API: every name a plugin (or a plugin's tests) may import from eventkit.

A plugin imports from here and from :mod:`eventkit.plugin.testing` only; the modules these names
live in may move or change, these names do not without a version note. ``tests/test_layers.py``
fails when a package under ``plugins/`` or ``examples/`` imports anything else from eventkit.
Names are imported on first use, so ``import eventkit.plugin`` costs nothing.

Registering components::

    from eventkit.plugin import hookimpl

    @hookimpl
    def register_neurons(register):
        register("my_lif", MyLIF, description="LIF with adaptation")

=====================  =====================================================================
group                  names
=====================  =====================================================================
hooks and registry     hookimpl, get_registry, Registry, RegistryError
configs and runs       compose, validate, conf_dir, ConfigError, run, adapted_config, load_data
data                   SpikeData, DatasetSplits, from_samples, concat, PreprocessConfig,
                       events_to_spikes, cached, cache, yinyang, synthetic_kws,
                       synthetic_kws_vocabulary, synthetic_kws_samples, augment
engine                 EventpropNet, Simulation, FakeQuant, Topology, Delay, parse_delays,
                       NeuronModel, LinearDynamics, Coefficients, check_positive, LIF, LI, Readout,
                       READOUTS, SumV, MeanV, ExpWeightedMeanV, MaxV, FirstSpike, PerStepV,
                       spike_count_regularizer
targets                Target, ConnectionDelay, adaptable_delays (what adapt is handed), NetworkConfig
files and reports      write_json, write_text, json_default, atomic_path, pct
=====================  =====================================================================
"""

from __future__ import annotations

import importlib
from typing import Any

#: public name -> (module, attribute); attribute None: the module itself
EXPORTS: dict[str, tuple[str, str | None]] = {
    # hooks and registry
    "hookimpl": ("eventkit.base.hookspecs", "hookimpl"),
    "get_registry": ("eventkit.base.registry", "get_registry"),
    "Registry": ("eventkit.base.registry", "Registry"),
    "RegistryError": ("eventkit.base.registry", "RegistryError"),
    # configs and runs
    "ConfigError": ("eventkit.base.errors", "ConfigError"),
    "compose": ("eventkit.running.config", "compose"),
    "validate": ("eventkit.running.config", "validate"),
    "conf_dir": ("eventkit.running.config", "conf_dir"),
    "run": ("eventkit.running.pipeline", "run"),
    "adapted_config": ("eventkit.running.pipeline", "adapted_config"),
    "load_data": ("eventkit.running.pipeline", "load_data"),
    # data
    "SpikeData": ("eventkit.data.spikes", "SpikeData"),
    "DatasetSplits": ("eventkit.data.spikes", "DatasetSplits"),
    "from_samples": ("eventkit.data.spikes", "from_samples"),
    "concat": ("eventkit.data.spikes", "concat"),
    "PreprocessConfig": ("eventkit.data.preprocess", "PreprocessConfig"),
    "events_to_spikes": ("eventkit.data.preprocess", "events_to_spikes"),
    "cached": ("eventkit.data.cache", "cached"),
    "cache": ("eventkit.data.cache", None),
    "yinyang": ("eventkit.data.yinyang", "yinyang"),
    "synthetic_kws": ("eventkit.data.synthetic_kws", "synthetic_kws"),
    "synthetic_kws_vocabulary": ("eventkit.data.synthetic_kws", "make_vocabulary"),
    "synthetic_kws_samples": ("eventkit.data.synthetic_kws", "generate"),
    "augment": ("eventkit.components.augment", None),
    # engine
    "EventpropNet": ("eventkit.engine", "EventpropNet"),
    "Simulation": ("eventkit.engine", "Simulation"),
    "FakeQuant": ("eventkit.engine", "FakeQuant"),
    "Topology": ("eventkit.engine", "Topology"),
    "Delay": ("eventkit.engine", "Delay"),
    "parse_delays": ("eventkit.engine", "parse_delays"),
    "NeuronModel": ("eventkit.engine", "NeuronModel"),
    "Coefficients": ("eventkit.engine", "Coefficients"),
    "check_positive": ("eventkit.engine.neurons", "check_positive"),
    "LinearDynamics": ("eventkit.engine.dynamics", "LinearDynamics"),
    "LIF": ("eventkit.engine", "LIF"),
    "LI": ("eventkit.engine", "LI"),
    "Readout": ("eventkit.engine", "Readout"),
    "READOUTS": ("eventkit.engine.readouts", "READOUTS"),
    "SumV": ("eventkit.engine", "SumV"),
    "MeanV": ("eventkit.engine", "MeanV"),
    "ExpWeightedMeanV": ("eventkit.engine", "ExpWeightedMeanV"),
    "MaxV": ("eventkit.engine", "MaxV"),
    "FirstSpike": ("eventkit.engine", "FirstSpike"),
    "PerStepV": ("eventkit.engine", "PerStepV"),
    "spike_count_regularizer": ("eventkit.engine", "spike_count_regularizer"),
    # targets
    "Target": ("eventkit.components.targets", "Target"),
    "NetworkConfig": ("eventkit.components.networks", "NetworkConfig"),
    "ConnectionDelay": ("eventkit.components.networks", "ConnectionDelay"),
    "adaptable_delays": ("eventkit.components.networks", "adaptable_delays"),
    # files and reports
    "write_json": ("eventkit.base.files", "write_json"),
    "write_text": ("eventkit.base.files", "write_text"),
    "json_default": ("eventkit.base.files", "json_default"),
    "atomic_path": ("eventkit.base.files", "atomic_path"),
    "pct": ("eventkit.running.report", "pct"),
}

__all__ = sorted(EXPORTS)


def __getattr__(name: str) -> Any:
    where = EXPORTS.get(name)
    if where is None:
        raise AttributeError(
            f"eventkit.plugin has no {name!r}; the plugin API is the names listed in eventkit.plugin.__all__"
        )
    module = importlib.import_module(where[0])
    value = module if where[1] is None else getattr(module, where[1])
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
