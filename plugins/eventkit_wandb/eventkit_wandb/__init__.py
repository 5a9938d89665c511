"""Weights & Biases logger for eventkit (``logger=wandb``), a plugin like any third party's.

Install with ``pip install -e plugins/eventkit_wandb``; it is found through the ``eventkit`` entry-point
group. ``wandb`` itself is imported only when a run uses this logger.
"""
