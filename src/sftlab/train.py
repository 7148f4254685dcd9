"""``python -m sftlab.train``: the module form of ``sftlab train``."""

import sys

from sftlab.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
