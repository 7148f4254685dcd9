"""The running sweep trial as training sees it: report intermediate values, ask whether to stop.

A sweeper puts a JSON spec of the job's trial in the environment variable :data:`ENV` (through Hydra's
``hydra.job.env_set``, so it reaches the job whichever launcher runs it: this process, a joblib worker, a Ray task, a
SLURM job). The spec names a ``module:function`` (its ``connect`` key) that turns it into a :class:`Reporter`; the
first report imports and calls it, so this module stays free of Optuna. Training reports its evaluation loss through
:func:`report` and raises :class:`TrialPruned` when :func:`should_prune` says so. Without the variable (a single run)
both are no-ops.

The reported value is always ``eval_loss`` (:data:`REPORTED`), lower is better, whatever the sweep's objective:
the sweeper makes its pruner compare losses as losses when the study maximises a translation score.
This module is a leaf: no torch, no Hydra, no Optuna.
"""

from __future__ import annotations

import importlib
import json
import os
from typing import Protocol

from sftlab.errors import SftlabError

ENV = "SFTLAB_TRIAL"
REPORTED = "eval_loss"  # the intermediate value handed to the sweep; minimised


class Reporter(Protocol):
    def report(self, step: int, value: float) -> None: ...

    def should_prune(self) -> bool: ...


class TrialPruned(SftlabError):
    """The sweep's pruner stopped this trial early; the sweeper records it as pruned, not failed."""


_connected: tuple[str, Reporter] | None = None  # the spec last connected, and its reporter


def _reporter() -> Reporter | None:
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


def active() -> bool:
    return bool(os.environ.get(ENV))


def report(step: int, value: float) -> None:
    """Hand ``value`` of :data:`REPORTED` at optimizer step ``step`` to the current trial, if any."""
    reporter = _reporter()
    if reporter is not None:
        reporter.report(step, value)


def should_prune() -> bool:
    """Whether the current trial's pruner gives up on it after the last report; False outside a sweep."""
    reporter = _reporter()
    return reporter is not None and reporter.should_prune()
