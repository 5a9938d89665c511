"""The foundation every layer may use; it imports nothing else from eventkit.

* :mod:`.errors` -- :class:`ConfigError`, the one error type for a bad config (key, problem, fix).
* :mod:`.schema` -- typed config sections built from config mappings (``from_config``, ``setting``).
* :mod:`.files` -- atomic writes and JSON helpers.
* :mod:`.hookspecs` -- the hooks a plugin implements (``hookimpl``).
* :mod:`.registry` -- the pluggy registry of named components.
* :mod:`.reproducible` -- the process's numeric mode (``strict`` | ``fast``).
* :mod:`.version` -- ``__version__``.
"""
