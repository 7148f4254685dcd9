"""``python -m sftlab.export``: the module form of ``sftlab export`` (it lives in ``sftlab.commands.export``)."""

import sys

from sftlab.commands.export import main

if __name__ == "__main__":
    sys.exit(main())
