"""``python -m sftlab.translate``: the module form of ``sftlab translate``."""

import sys

from sftlab.cli import main

if __name__ == "__main__":
    sys.exit(main(["translate", *sys.argv[1:]]))
