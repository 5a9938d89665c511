"""Shared by every test suite under this repository (the core's tests/ and each plugin's tests/).

Runs spawned by tests draw no windows and reach no logging service: matplotlib renders off-screen
and wandb stays offline unless the environment says otherwise (CI sets the same values).
"""

import os

for key, value in (("MPLBACKEND", "Agg"), ("WANDB_MODE", "offline"), ("WANDB_SILENT", "true")):
    os.environ.setdefault(key, value)
