"""Running a config: from the command line (or :func:`eventkit.run`) to a finished run directory.

* :mod:`.config` -- composing and validating the Hydra config.
* :mod:`.pipeline` -- one run (data, network, target, training, report): :func:`eventkit.run`.
* :mod:`.cli` -- ``python -m eventkit``: the command line, Hydra's entry, ``--plugins``, ``--cfg job``.
* :mod:`.failures` -- how a failure is said: one line with its fix, the traceback when asked for.
* :mod:`.resume` -- continuing a run from its directory; :mod:`.sweep` -- multirun summaries.
* :mod:`.shared_run_dir` -- the Hydra callback that gives every process of a torchrun launch
  rank 0's run directory.
* :mod:`.report` -- report.md and the plots.
"""
