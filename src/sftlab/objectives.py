"""What a run can be optimised for: the objectives' names, their directions and how each is read off a run.

Torch-free and a leaf, so that training, evaluation, the report and the sweeper's config agree on one list. A
translation score comes from the ``macro`` average of ``eval.json``; a loss or a cost from ``metrics.json``.
``eval.objective`` names one objective, or a list of them for a multi-objective sweep (quality against cost).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sftlab.errors import SftlabError

SCORES = ("bleu", "chrf", "chrf_pp")  # macro translation scores, maximised
LOSS_OBJECTIVES = ("eval_loss", "train_loss")  # read from metrics.json, minimised
# What a run costs, minimised: the objective's name and its key in metrics.json.
COSTS = {"train_seconds": "train_runtime_s", "peak_memory_gib": "peak_memory_gib"}
OBJECTIVES = (*SCORES, *LOSS_OBJECTIVES, *COSTS)  # what eval.objective may name


def names(objective: str | Sequence[str]) -> list[str]:
    """``eval.objective`` as a list of names: one name, or the names of a multi-objective sweep, checked."""
    found = [objective] if isinstance(objective, str) else [str(name) for name in objective]
    if not found:
        raise SftlabError(f"eval.objective is empty (expected one or more of: {', '.join(OBJECTIVES)})")
    for name in found:
        check(name)
    if len(set(found)) != len(found):
        raise SftlabError(f"eval.objective names an objective twice: {found}")
    return found


def direction(objective: str) -> str:
    """``maximize`` for translation scores, ``minimize`` for losses and costs."""
    return "maximize" if objective in SCORES else "minimize"


def check(objective: str) -> None:
    if objective not in OBJECTIVES:
        raise SftlabError(f"unknown eval.objective {objective!r} (expected one of: {', '.join(OBJECTIVES)})")


def read(objective: str, scores: Mapping[str, Any] | None, metrics: Mapping[str, Any] | None) -> float | None:
    """The objective's value from a run's scores (eval.json) and metrics (metrics.json); None when not recorded."""
    if objective in SCORES:
        found = (scores or {}).get("macro", {}).get(objective)
    else:
        found = (metrics or {}).get(COSTS.get(objective, objective))
    return None if found is None else float(found)


def value(objective: str, scores: Mapping[str, Any] | None, metrics: Mapping[str, Any] | None) -> float:
    """The number a sweep optimises: a macro translation score, a final loss, or a cost of the training."""
    check(objective)
    if objective in SCORES and scores is None:
        raise SftlabError(f"eval.objective={objective} needs the translation evaluation (eval.enabled=true)")
    result = read(objective, scores, metrics)
    if result is None:
        raise SftlabError(f"eval.objective={objective}: the run recorded none (eval_loss needs a validation split)")
    return result


def task_result(
    objective: str | Sequence[str], scores: Mapping[str, Any] | None, metrics: Mapping[str, Any] | None
) -> float | list[float]:
    """What a task returns to the sweeper: one value for one objective, a list (in order) for a list of them."""
    values = [value(name, scores, metrics) for name in names(objective)]
    return values[0] if isinstance(objective, str) else values
