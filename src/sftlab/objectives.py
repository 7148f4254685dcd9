"""What a run can be optimised for: the objectives' names, their directions and how each is read off a run.

Torch-free and a leaf, so that training, evaluation, the report and the sweeper's config agree on one list. A
translation score comes from the scores of ``eval.json`` (its ``macro`` average); a loss from ``metrics.json``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sftlab.errors import SftlabError

SCORES = ("bleu", "chrf", "chrf_pp")  # macro translation scores, maximised
LOSS_OBJECTIVES = ("eval_loss", "train_loss")  # read from metrics.json, minimised
OBJECTIVES = (*SCORES, *LOSS_OBJECTIVES)  # what eval.objective may name


def direction(objective: str) -> str:
    """``minimize`` for losses, ``maximize`` for translation scores."""
    return "minimize" if objective.endswith("loss") else "maximize"


def check(objective: str) -> None:
    if objective not in OBJECTIVES:
        raise SftlabError(f"unknown eval.objective {objective!r} (expected one of: {', '.join(OBJECTIVES)})")


def read(objective: str, scores: Mapping[str, Any] | None, metrics: Mapping[str, Any] | None) -> float | None:
    """The objective's value from a run's scores (eval.json) and metrics (metrics.json); None when not recorded."""
    found = (scores or {}).get("macro", {}).get(objective) if objective in SCORES else (metrics or {}).get(objective)
    return None if found is None else float(found)


def value(objective: str, scores: Mapping[str, Any] | None, metrics: Mapping[str, Any] | None) -> float:
    """The number a sweep optimises: a macro translation score, or the final evaluation / training loss."""
    check(objective)
    if objective in LOSS_OBJECTIVES and (metrics or {}).get(objective) is None:
        raise SftlabError(f"eval.objective={objective}: the run recorded none (eval_loss needs a validation split)")
    if objective in SCORES and scores is None:
        raise SftlabError(f"eval.objective={objective} needs the translation evaluation (eval.enabled=true)")
    result = read(objective, scores, metrics)
    assert result is not None
    return result
