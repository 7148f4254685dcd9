"""The one seam between sftlab and its Hydra plugins: what the sweeper and the launchers may use of sftlab.

The plugins import this package and nothing else of sftlab (an import-linter contract holds them to it), so the
rest of sftlab can change shape without breaking them. It offers the sweep dir's file names (``rundir``), the
objectives' directions, the fixed trials of a factorial design (``fixed``), the job side of a trial (``trial``:
the spec a job gets, the pruner, the reporter training uses) and what a finished job tells the sweeper besides its
value (``outcome``: a returned failure, the run's tracking links).
"""

from __future__ import annotations

from typing import Any

from sftlab import objectives, rundir
from sftlab.sweep import fixed, outcome, trial
from sftlab.sweep.fixed import FixedTrials, design_trials
from sftlab.sweep.outcome import JobFailure, run_links

__all__ = [
    "FixedTrials",
    "JobFailure",
    "design_trials",
    "fixed",
    "objective_direction",
    "outcome",
    "run_links",
    "rundir",
    "trial",
]


def objective_direction(objective: Any) -> str | list[str]:
    """``maximize`` or ``minimize`` for one objective; a list of them, in order, for a list of objectives."""
    if isinstance(objective, str):
        return objectives.direction(objectives.names(objective)[0])
    return [objectives.direction(name) for name in objectives.names(list(objective))]
