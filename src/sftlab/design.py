"""``python -m sftlab.design``: the module form of ``sftlab design``."""

import sys

from sftlab.cli import main

if __name__ == "__main__":
    sys.exit(main(["design", *sys.argv[1:]]))
