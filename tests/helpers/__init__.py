"""Servers and readers the tests start or use: PostgreSQL, a one-node SLURM cluster, W&B offline records."""
