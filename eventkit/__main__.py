"""``python -m eventkit``: see :func:`eventkit.app.main`."""

import sys

from eventkit.app import main

if __name__ == "__main__":
    sys.exit(main())
