"""The entry points: each composes its config, calls the builders top to bottom and returns the objective."""
