"""``python -m sftlab.translate``: the module form of ``sftlab translate`` (it lives in ``sftlab.commands.ask``)."""

import sys

from sftlab.commands.ask import translate_main

if __name__ == "__main__":
    sys.exit(translate_main())
