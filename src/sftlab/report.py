"""``python -m sftlab.report``: kept for the module form of the command (it lives in ``sftlab.commands.report``)."""

import sys

from sftlab.commands.report import main

if __name__ == "__main__":
    sys.exit(main())
