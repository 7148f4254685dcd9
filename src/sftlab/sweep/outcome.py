"""What a sweep learns from a finished job besides its value: a failure the job returned, and the run's links.

A sftlab task that fails in a multirun returns a :class:`JobFailure` (the entry point, ``sftlab.commands.job``).
Returned, not raised: Hydra's basic sweeper stops a whole multirun at a raised job error, while an ablation should
record the failed job and go on. Returned, not left in ``failure.json`` for the sweeper to read: the return value
travels with the job's result from any launcher (pickled back from a GPU worker, a Ray task or a SLURM job, where the
run dir may not even be on the sweeper's disk), and the sweeper needs to know no run-dir file. ``failure.json`` is
still written, for the report.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sftlab import rundir
from sftlab.errors import SftlabError, TrialPruned


@dataclass(frozen=True)
class JobFailure:
    """A failed job's outcome: the error's type and one-line message; ``pruned`` when the pruner stopped it."""

    error_type: str
    message: str
    pruned: bool = False
    user_error: bool = False  # a SftlabError: bad input or settings, not a bug

    @classmethod
    def of(cls, error: BaseException) -> JobFailure:
        return cls(
            error_type=type(error).__name__,
            message=str(error) or type(error).__name__,
            pruned=isinstance(error, TrialPruned),
            user_error=isinstance(error, SftlabError),
        )


def run_links(run_dir: str | Path) -> dict[str, str]:
    """Where the run in ``run_dir`` is tracked (``run.json``'s ``tracking``: ``wandb_id``, ``wandb_url``); empty when
    it is not, or has no readable ``run.json`` (a job that failed before writing it). Only that key is read, so a
    partial or older record still gives its links."""
    try:
        tracking = rundir.read_json(Path(run_dir) / rundir.RUN).get("tracking") or {}
    except (OSError, ValueError, AttributeError):
        return {}
    return {str(key): str(value) for key, value in tracking.items() if value}
