"""A job's return as a trial outcome: the state to tell the study, the values, and user attrs saying why.

A job that returns one number per objective (a float for one, a list or tuple for several) completes its trial, as
in the official plugin. A job that raised is FAIL with the error as its ``reason``; a sftlab job that failed returns
a ``sftlab.sweep.JobFailure`` instead (why: ``sftlab.sweep.outcome``), FAIL or, when its pruner stopped it, PRUNED.
Anything else (None, a string, the wrong count, NaN) is FAIL with the return named.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from omegaconf import OmegaConf
from optuna.trial import TrialState

from sftlab.sweep import JobFailure, run_links


@dataclass
class Outcome:
    state: TrialState
    values: list[float] | None = None
    attrs: dict[str, Any] = field(default_factory=dict)  # user attrs: reason, error_type, run_dir, wandb_*

    @property
    def reason(self) -> str | None:
        return self.attrs.get("reason")


def values_of(value: Any, n_objectives: int) -> list[float] | str:
    """The task's return as one float per objective, or why it is not that."""
    items = list(value) if isinstance(value, (list, tuple)) or OmegaConf.is_list(value) else [value]
    if len(items) != n_objectives:
        return f"the task returned {len(items)} value(s) for {n_objectives} objectives: {value!r}"
    numbers = []
    for item in items:
        try:
            numbers.append(float(item))
        except (TypeError, ValueError):
            return f"the task returned {value!r}, not {'a number' if n_objectives == 1 else 'numbers'}"
    if any(math.isnan(number) for number in numbers):
        return "the task returned NaN"
    return numbers


def job_outcome(ret: JobReturn, n_objectives: int = 1) -> Outcome:
    """The outcome of one job's return; its run dir and tracking links become user attrs whatever the state."""
    attrs: dict[str, Any] = {}
    run_dir = OmegaConf.select(ret.hydra_cfg, "hydra.runtime.output_dir") if ret.hydra_cfg is not None else None
    if run_dir:
        attrs["run_dir"] = str(run_dir)
        attrs.update(run_links(run_dir))
    if ret.status != JobStatus.COMPLETED:
        error = ret._return_value
        attrs.update(reason=str(error) or type(error).__name__, error_type=type(error).__name__)
        return Outcome(TrialState.FAIL, None, attrs)
    value = ret.return_value
    if isinstance(value, JobFailure):
        attrs.update(reason=value.message, error_type=value.error_type)
        return Outcome(TrialState.PRUNED if value.pruned else TrialState.FAIL, None, attrs)
    values = values_of(value, n_objectives)
    if isinstance(values, str):
        return Outcome(TrialState.FAIL, None, {**attrs, "reason": values})
    return Outcome(TrialState.COMPLETE, values, attrs)
