"""The running sweep trial as training sees it: report intermediate values, ask whether to stop.

A sweeper puts a JSON spec of the job's trial in the environment variable :data:`ENV` (through Hydra's
``hydra.job.env_set``, so it reaches the job whichever launcher runs it: this process, a joblib worker, a Ray task, a
SLURM job). The spec names a ``module:function`` (its ``connect`` key) that turns it into a :class:`Reporter`; the
first call of :func:`current` imports and calls it, so this module stays free of Optuna. The entry point hands that
reporter to training, which reports its evaluation loss and raises :class:`TrialPruned` when the reporter says to
prune. Without the variable (a single run) there is no reporter.

The reported value is always ``eval_loss`` (:data:`REPORTED`), lower is better, whatever the sweep's objective:
the sweeper makes its pruner compare losses as losses when the study maximises a translation score.
This module is a leaf: no torch, no Hydra, no Optuna.
"""

from __future__ import annotations

import importlib
import json
import os
from typing import Protocol

from sftlab.errors import TrialPruned

__all__ = ["ENV", "REPORTED", "Reporter", "TrialPruned", "current"]

ENV = "SFTLAB_TRIAL"
REPORTED = "eval_loss"  # the intermediate value handed to the sweep; minimised


class Reporter(Protocol):
    def report(self, step: int, value: float) -> None: ...

    def should_prune(self) -> bool: ...


_connected: tuple[str, Reporter] | None = None  # the spec last connected, and its reporter


def current() -> Reporter | None:
    """The reporter for the spec in :data:`ENV`, connected once per spec (a process may run several jobs)."""
    global _connected
    spec = os.environ.get(ENV)
    if not spec:
        return None
    if _connected is None or _connected[0] != spec:
        fields = json.loads(spec)
        module, _, function = fields["connect"].partition(":")
        _connected = (spec, getattr(importlib.import_module(module), function)(fields))
    return _connected[1]
