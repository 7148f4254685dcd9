"""An Optuna sweeper for Hydra, with the official ``hydra-optuna-sweeper`` config schema (which pins optuna<3).

Select it with ``hydra/sweeper=sftlab_optuna`` (or ``override /hydra/sweeper: sftlab_optuna`` in a config). The
official plugin's examples run on it unchanged (one or several objectives, custom search spaces, deletes). Beyond
them: a persistent, resumable study by default (SQLite in the sweep dir), shared by several sweep processes through
PostgreSQL or a journal file with exactly ``n_trials`` run between them, heartbeats that fail and retry a dead
worker's trial, pruning on the evaluation loss that training reports (``sftlab.sweep.trial``) from any launcher,
failed and pruned jobs recorded with their reason, one-line configuration errors before the first trial, metric names
and each trial's run dir and W&B links in the study, and the sweep's artifacts (results, trials table, plots, the
Pareto front, the chosen trial as an experiment config). Hydra imports every public module here at start-up, so only
``config`` is imported eagerly.
"""
