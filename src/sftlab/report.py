"""``python -m sftlab.report``: the module form of ``sftlab report``."""

import sys

from sftlab.cli import main

if __name__ == "__main__":
    sys.exit(main(["report", *sys.argv[1:]]))
