"""Every hook an eventkit plugin can implement.

A plugin is any module (or object) with functions decorated by :data:`hookimpl`. Installed
distributions are found through the ``eventkit`` entry-point group; the built-in components are
registered through the same hooks (``eventkit.base.registry.BUILTIN_MODULES``), so nothing in the core
is special.

Each ``register_<kind>s`` hook receives a ``register`` callback::

    @hookimpl
    def register_neurons(register):
        register("my_lif", MyLIF, description="LIF with adaptation")

``register(name, factory, description="")`` -- ``factory(**config)`` builds the component from the
keys of its config group (minus ``name``). Registering a name that another plugin already holds
for the same kind is an error naming both providers.
"""

from __future__ import annotations

import pluggy

PROJECT = "eventkit"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_datasets(register):
    """Datasets. ``factory(**cfg)`` returns a :class:`eventkit.data.DatasetSplits`."""


@hookspec
def register_augmentations(register):
    """Per-epoch augmentations. ``factory(**cfg)`` returns a callable
    ``(data: SpikeData, rng: numpy.random.Generator) -> SpikeData``."""


@hookspec
def register_neurons(register):
    """Neuron models. ``factory(**cfg)`` returns an :class:`eventkit.engine.NeuronModel`."""


@hookspec
def register_readouts(register):
    """Loss shapes. ``factory(**cfg)`` returns an :class:`eventkit.engine.Readout`."""


@hookspec
def register_losses(register):
    """Losses. ``factory(**cfg)`` returns a callable ``(readout, labels) -> scalar tensor``."""


@hookspec
def register_optimizers(register):
    """Optimizers. ``factory(params, **cfg)`` returns a ``torch.optim.Optimizer``."""


@hookspec
def register_schedulers(register):
    """Learning-rate schedules. ``factory(optimizer, **cfg)`` returns a schedule object with
    ``step_batch()`` and ``step_epoch(train_accuracy)``."""


@hookspec
def register_targets(register):
    """Hardware targets. ``factory(**cfg)`` returns an :class:`eventkit.components.targets.Target`."""


@hookspec
def register_loggers(register):
    """Metric loggers. ``factory(**cfg)`` returns an :class:`eventkit.components.loggers.Logger`."""


@hookspec
def register_network_formats(register):
    """Readers of trained networks stored in a file format (``network.from_file=PATH``), by file
    suffix: ``register(".suffix", reader)``. ``reader(path, *, readout, dt, n_steps, backend)``
    returns an :class:`eventkit.engine.EventpropNet` running at ``dt`` ms for ``n_steps`` steps on
    the engine ``backend`` ("cpu", "cuda") and raises
    ValueError (one line) for a file it cannot read."""


@hookspec
def register_config_dirs(register):
    """Config directories to add to Hydra's search path: ``register(path)`` with a filesystem
    path or a ``pkg://package.sub`` URL. A plugin ships ``dataset/<name>.yaml`` etc. there."""
