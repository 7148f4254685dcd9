"""``python -m sftlab.preview``: the module form of ``sftlab preview``."""

import sys

from sftlab.cli import main

if __name__ == "__main__":
    sys.exit(main(["preview", *sys.argv[1:]]))
