"""``python -m antlers``: the same as the ``antlers`` command."""

import sys

from antlers.cli import main

if __name__ == "__main__":
    sys.exit(main())
