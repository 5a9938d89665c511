"""Shared by every test suite under this repository (the core's tests/ and each plugin's tests/).

Runs spawned by tests draw no windows and reach no logging service: matplotlib renders off-screen
and wandb stays offline unless the environment says otherwise (CI sets the same values).
"""

import os

from eventkit.base.reproducible import prepare_process

for key, value in (("MPLBACKEND", "Agg"), ("WANDB_MODE", "offline"), ("WANDB_SILENT", "true")):
    os.environ.setdefault(key, value)
# the tests run in strict mode (bit-identical on any x86-64 machine; EVENTKIT_REPRODUCIBLE=fast
# runs them in fast mode, the golden-record tests then skip), set before numpy, torch and numba
# start; tests of the other mode start processes of their own
os.environ.setdefault("EVENTKIT_REPRODUCIBLE", "strict")
prepare_process()
