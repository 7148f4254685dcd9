"""The config tree, shipped in the package as ``sftlab.conf`` (Hydra reads it as ``pkg://sftlab.conf``)."""
