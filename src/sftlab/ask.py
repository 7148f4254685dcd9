"""``python -m sftlab.ask``: the module form of ``sftlab ask`` (it lives in ``sftlab.commands.ask``)."""

import sys

from sftlab.commands.ask import ask_main

if __name__ == "__main__":
    sys.exit(ask_main())
