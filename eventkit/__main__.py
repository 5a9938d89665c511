"""``python -m eventkit``: see :func:`eventkit.running.app.main`."""

import sys

if __name__ == "__main__":
    # before numpy, torch and numba start: the process's trainer.reproducible mode
    from eventkit.base.reproducible import prepare_process

    prepare_process(sys.argv[1:])

from eventkit.running.app import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
