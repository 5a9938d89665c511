"""Training: the loop that fits a network and the one training step under it.

* :mod:`.loop` -- :func:`fit` (epochs, validation, early stop, checkpoints), :func:`evaluate`
  and :class:`TrainerConfig`.
* :mod:`.step` -- the training step (:class:`Step`: the :class:`Objective` -- loss plus
  regulariser -- of the whole global batch, its gradient summed over fixed sample groups, the
  optimizer step), one and the same for one process and for several.
* :mod:`.parallel` -- :class:`DataParallel`, the processes that train one run together (a single
  process is a group of one) and how a batch's sample groups split over them.
* :mod:`.launch` -- where this process stands in a torchrun/submitit launch; joining and leaving
  the process group.
"""
