"""The components a config names, beyond the engine's neurons and readouts and the datasets.

* :mod:`.networks` -- ``network:`` -> an :class:`~eventkit.engine.EventpropNet` (or one read
  from a file through a registered network format).
* :mod:`.losses`, :mod:`.optimizers`, :mod:`.schedules`, :mod:`.loggers`, :mod:`.augment` --
  the built-in ``loss``, ``optimizer``, ``scheduler``, ``logger`` and ``augmentation`` components.
* :mod:`.targets` -- the :class:`Target` protocol and the built-in ``float`` target.

Each module registers its built-ins through the same hooks a plugin uses.
"""
