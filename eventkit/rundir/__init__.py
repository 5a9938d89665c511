"""The run directory: what a run writes, and how (docs/run-directory.md is the contract).

* :mod:`.layout` -- :class:`RunDir`, the file names, metrics.jsonl, summary.json, refusal of a
  directory that holds another run.
* :mod:`.manifest` -- manifest.json (versions, machine, numeric mode, git commit).
* :mod:`.checkpoints` -- checkpoint files and their verification.
* :mod:`.runlog` -- eventkit.log, a copy of everything the run prints.
* :mod:`.memory` -- :class:`MemoryRunDir`, the records a data-parallel rank other than 0 keeps in
  memory (rank 0 alone writes the directory).

Training writes into a run directory, so this layer sits below training.
"""
