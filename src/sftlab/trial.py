"""The running sweep trial as training sees it: report intermediate values, ask whether to stop.

A sweeper that runs its jobs in this process (Hydra's basic launcher) sets a reporter before each job and clears it
after. Training reports its evaluation loss through :func:`report` and raises :class:`TrialPruned` when
:func:`should_prune` says so. With no reporter set (a single run, a launcher with its own processes) both are no-ops.

The reported value is always ``eval_loss`` (:data:`REPORTED`), lower is better, whatever the sweep's objective:
the sweeper makes its pruner compare losses as losses when the study maximises a translation score.
This module is a leaf: no torch, no Hydra, no Optuna.
"""

from __future__ import annotations

from typing import Protocol

from sftlab.errors import SftlabError

REPORTED = "eval_loss"  # the intermediate value handed to the sweep; minimised


class Reporter(Protocol):
    def report(self, step: int, value: float) -> None: ...

    def should_prune(self) -> bool: ...


class TrialPruned(SftlabError):
    """The sweep's pruner stopped this trial early; the sweeper records it as pruned, not failed."""


_current: Reporter | None = None


def set_reporter(reporter: Reporter) -> None:
    global _current
    _current = reporter


def clear_reporter() -> None:
    global _current
    _current = None


def active() -> bool:
    return _current is not None


def report(step: int, value: float) -> None:
    """Hand ``value`` of :data:`REPORTED` at optimizer step ``step`` to the current trial, if any."""
    if _current is not None:
        _current.report(step, value)


def should_prune() -> bool:
    """Whether the current trial's pruner gives up on it after the last report; False outside a sweep."""
    return _current is not None and _current.should_prune()
