"""``python -m sftlab.evaluate``: kept for the module form of the command (it lives in ``sftlab.commands.evaluate``)."""

from sftlab.commands.evaluate import main

if __name__ == "__main__":
    main()
