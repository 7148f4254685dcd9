"""``python -m sftlab.design``: kept for the module form of the command (it lives in ``sftlab.commands.design``)."""

import sys

from sftlab.commands.design import main

if __name__ == "__main__":
    sys.exit(main())
