"""Training: the loop that fits a network and the data-parallel step under it.

* :mod:`.loop` -- :func:`fit` (epochs, validation, early stop, checkpoints) and
  :class:`TrainerConfig`.
* :mod:`.parallel` -- data parallelism over torch.distributed and the launch detection.
"""
