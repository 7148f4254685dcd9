"""``python -m sftlab.preview``: kept for the module form of the command (it lives in ``sftlab.commands.preview``)."""

from sftlab.commands.preview import main

if __name__ == "__main__":
    main()
