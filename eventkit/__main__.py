"""``python -m eventkit`` and the ``eventkit`` console script: see :func:`eventkit.running.cli.main`."""

import sys


def console() -> int:
    """Fix the process's trainer.reproducible mode before numpy, torch and numba start, then run
    the CLI (both entry points come through here, so ``eventkit ...`` computes as
    ``python -m eventkit ...`` does)."""
    from eventkit.base.reproducible import prepare_process

    prepare_process(sys.argv[1:])
    from eventkit.running.cli import main

    return main()


if __name__ == "__main__":
    sys.exit(console())
