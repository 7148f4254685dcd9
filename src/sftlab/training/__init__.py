"""Supervised fine-tuning with TRL: tokenized splits, the trainer, its callbacks and faults, the run record."""
