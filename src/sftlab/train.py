"""``python -m sftlab.train``: kept for the module form of the command (it lives in ``sftlab.commands.train``)."""

from sftlab.commands.train import main

if __name__ == "__main__":
    main()
