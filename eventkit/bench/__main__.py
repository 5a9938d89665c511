"""``python -m eventkit.bench [--delays] [...]``: the engine benchmark, or with ``--delays`` the
delay-learning benchmark."""

import sys

from eventkit.base.reproducible import prepare_process

prepare_process()  # $EVENTKIT_REPRODUCIBLE (fast by default), before numpy, torch and numba start

argv = sys.argv[1:]
if "--delays" in argv:
    from eventkit.bench.delays import main  # noqa: E402

    raise SystemExit(main([a for a in argv if a != "--delays"]))
from eventkit.bench.engine import main  # noqa: E402

raise SystemExit(main(argv))
