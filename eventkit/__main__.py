"""``python -m eventkit``: see :func:`eventkit.app.main`."""

import sys

if __name__ == "__main__":
    # before numpy, torch and numba start: the process's trainer.reproducible mode
    from eventkit.reproducible import prepare_process

    prepare_process(sys.argv[1:])

from eventkit.app import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
