"""``python -m sftlab.ask``: the module form of ``sftlab ask``."""

import sys

from sftlab.cli import main

if __name__ == "__main__":
    sys.exit(main(["ask", *sys.argv[1:]]))
