from eventkit.reproducible import prepare_process

prepare_process()  # $EVENTKIT_REPRODUCIBLE (fast by default), before numpy, torch and numba start

from eventkit.bench.engine import main  # noqa: E402

raise SystemExit(main())
