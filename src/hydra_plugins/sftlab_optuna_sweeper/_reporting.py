"""Pruning from inside a job, wherever the launcher runs it: this process, a joblib worker, a Ray task, a SLURM job.

The sweeper hands each job, in its environment (``hydra.job.env_set``, the variable ``sftlab.trial.ENV``), a JSON spec:
how to reach the study (the storage spec of ``_storage.open_storage``), the trial, the pruner's ``_target_`` node and
the study's direction. In the job, ``sftlab.trial`` calls :func:`connect` with it the first time training reports,
and training's ``eval_loss`` reports then go straight to the storage, where the pruner compares them with the other
trials' (as Optuna's distributed optimisation does).

The reported value is a loss whatever the study's direction: when the study maximises (a translation score), the
pruner runs against a view of the study that minimises (:class:`LossPruner`), so it compares losses as losses.
HyperbandPruner builds its own bracket studies from the storage and cannot take that view: :func:`make_pruner`
refuses it for a maximised objective.
"""

from __future__ import annotations

import json
from typing import Any

import optuna
from hydra.utils import instantiate
from optuna.pruners import BasePruner, HyperbandPruner, NopPruner
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, Trial

from ._search_space import SweepConfigError


class _MinimizingView:
    """A study as a pruner sees it, with MINIMIZE as its direction; everything else is the study's."""

    def __init__(self, study: optuna.Study):
        self._study = study

    @property
    def direction(self) -> StudyDirection:
        return StudyDirection.MINIMIZE

    @property
    def directions(self) -> list[StudyDirection]:
        return [StudyDirection.MINIMIZE]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)


class LossPruner(BasePruner):
    """Runs ``inner`` on the reported losses as if the study minimised, whatever the study's own direction."""

    def __init__(self, inner: BasePruner):
        self.inner = inner

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        return self.inner.prune(_MinimizingView(study), trial)  # type: ignore[arg-type]


def make_pruner(node: dict[str, Any] | None, direction: StudyDirection) -> BasePruner:
    """The pruner of a ``_target_`` node (None: no pruning), made to compare losses as losses."""
    if node is None:
        return NopPruner()
    pruner = instantiate(node)
    if direction == StudyDirection.MINIMIZE:
        return pruner
    if isinstance(pruner, HyperbandPruner):
        raise SweepConfigError(
            "hydra.sweeper.pruner: HyperbandPruner cannot prune on eval_loss while the study maximises; "
            "use hydra/sweeper/pruner=median or successive_halving, or eval.objective=eval_loss"
        )
    return LossPruner(pruner)


class TrialReporter:
    """``sftlab.trial``'s reporter for one Optuna trial."""

    def __init__(self, trial: Trial):
        self.trial = trial

    def report(self, step: int, value: float) -> None:
        self.trial.report(value, step)

    def should_prune(self) -> bool:
        return self.trial.should_prune()


def job_spec(
    storage: str | dict, study_name: str, trial_id: int, pruner: dict | None, direction: StudyDirection
) -> str:
    """The value of ``sftlab.trial.ENV`` for one job."""
    return json.dumps(
        {
            "connect": f"{__name__}:connect",
            "storage": storage,
            "study_name": study_name,
            "trial_id": trial_id,
            "pruner": pruner,
            "direction": direction.name.lower(),
        }
    )


def env_override(name: str, value: str) -> str:
    """A Hydra override that sets environment variable ``name`` for the job (quoted for Hydra's grammar)."""
    quoted = value.replace("\\", "\\\\").replace("'", "\\'")
    return f"++hydra.job.env_set.{name}='{quoted}'"


def connect(spec: dict[str, Any]) -> TrialReporter:
    """The reporter for the trial a job spec names (called in the job's process by ``sftlab.trial``)."""
    from ._storage import open_storage

    direction = StudyDirection[spec["direction"].upper()]
    storage = open_storage(spec["storage"])
    study = optuna.load_study(
        study_name=spec["study_name"], storage=storage.storage, pruner=make_pruner(spec["pruner"], direction)
    )
    return TrialReporter(Trial(study, int(spec["trial_id"])))
