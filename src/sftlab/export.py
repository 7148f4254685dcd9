"""``python -m sftlab.export``: the module form of ``sftlab export``."""

import sys

from sftlab.cli import main

if __name__ == "__main__":
    sys.exit(main(["export", *sys.argv[1:]]))
