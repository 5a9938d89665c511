"""Running a config: from the command line (or :func:`eventkit.run`) to a finished run directory.

* :mod:`.config` -- composing and validating the Hydra config.
* :mod:`.app` -- the pipeline (data, network, target, training, report) and the CLI.
* :mod:`.resume` -- continuing a run from its directory; :mod:`.sweep` -- multirun summaries.
* :mod:`.shared_run_dir` -- the Hydra callback that gives every process of a torchrun launch
  rank 0's run directory.
* :mod:`.report` -- report.md and the plots.
"""
