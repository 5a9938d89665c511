"""``python -m eventkit``: see :func:`eventkit.running.cli.main`."""

import sys

if __name__ == "__main__":
    # before numpy, torch and numba start: the process's trainer.reproducible mode
    from eventkit.base.reproducible import prepare_process

    prepare_process(sys.argv[1:])

from eventkit.running.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
