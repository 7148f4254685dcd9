"""``python -m sftlab.evaluate``: the module form of ``sftlab evaluate``."""

import sys

from sftlab.cli import main

if __name__ == "__main__":
    sys.exit(main(["evaluate", *sys.argv[1:]]))
