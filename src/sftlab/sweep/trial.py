"""The job side of a sweep trial: which Optuna trial a job runs, and how training reports to it.

The Optuna sweeper puts a :class:`TrialSpec` (JSON) in each job's config at ``hydra.sweeper.trial``
(:data:`OVERRIDE`): how to reach the study's storage, the trial, the pruner and the study's direction. Hydra's config
travels with the job to wherever a launcher runs it (this process, a GPU worker, a Ray task, a SLURM job), and every
launcher leaves ``hydra.`` overrides out of its "Launching" lines, so the spec, with a database URL that may hold a
password, is never printed there. :func:`current` connects a job to its trial once; training's ``eval_loss`` reports
then go straight to the storage, where the pruner compares them with the other trials' (Optuna's distributed
optimisation), whichever launcher ran the job.

The reported value is a loss whatever the study's direction: when the study maximises (a translation score), the
pruner runs against a view of the study that minimises (:class:`LossPruner`), so it compares losses as losses.
HyperbandPruner builds its own bracket studies from the storage and cannot take that view: :func:`make_pruner`
refuses it for a maximised objective. A multi-objective study is not pruned (Optuna prunes single-objective studies
only), so its jobs get no spec.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

import optuna
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import OmegaConf
from optuna.pruners import BasePruner, HyperbandPruner, NopPruner
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, Trial

__all__ = ["OVERRIDE", "LossPruner", "OptunaReporter", "TrialSpec", "connect", "current", "make_pruner", "storage_of"]

KEY = "trial"  # the sweeper config's key that holds the spec in each job's config
OVERRIDE = f"hydra.sweeper.{KEY}"
JOURNAL_PREFIX = "journal:"


@dataclass(frozen=True)
class TrialSpec:
    """One job's trial. ``storage`` is what :func:`storage_of` opens: a SQLAlchemy URL, ``journal:<path>``, or a
    ``_target_`` node of an Optuna storage."""

    storage: str | dict[str, Any]
    study_name: str
    trial_id: int
    pruner: dict[str, Any] | None  # a `_target_` node; None: no pruning (reports are still stored)
    maximize: bool  # the study's direction; reports are losses either way

    def override(self) -> str:
        """The job override that hands this spec to the job (quoted for Hydra's grammar)."""
        text = json.dumps(dataclasses.asdict(self), separators=(",", ":"))
        return f"{OVERRIDE}='" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"

    @classmethod
    def parse(cls, text: str) -> TrialSpec:
        return cls(**json.loads(text))


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


def make_pruner(node: dict[str, Any] | None, maximize: bool) -> BasePruner:
    """The pruner of a ``_target_`` node (None: no pruning), made to compare losses as losses; ValueError when the
    pruner cannot (Hyperband in a maximised study)."""
    if node is None:
        return NopPruner()
    pruner = instantiate(node)
    if not maximize:
        return pruner
    if isinstance(pruner, HyperbandPruner):
        raise ValueError(
            "HyperbandPruner cannot prune on eval_loss while the study maximises; "
            "use hydra/sweeper/pruner=median or successive_halving, or a minimised objective"
        )
    return LossPruner(pruner)


def storage_of(spec: str | dict[str, Any]) -> BaseStorage:
    """The storage a spec names, opened as a job needs it (the sweeper adds heartbeats on its side)."""
    if isinstance(spec, dict):
        return instantiate(spec)
    if "://" in spec:
        # SQLite is shared by the job processes on this machine: wait for a write lock rather than fail at once.
        engine_kwargs = {"connect_args": {"timeout": 60}} if spec.startswith("sqlite") else None
        return RDBStorage(spec, engine_kwargs=engine_kwargs)
    return JournalStorage(JournalFileBackend(spec.removeprefix(JOURNAL_PREFIX)))


class OptunaReporter:
    """Training's reporter (``sftlab.training.callbacks.Reporter``) for one Optuna trial."""

    def __init__(self, trial: Trial):
        self.trial = trial

    def report(self, step: int, value: float) -> None:
        self.trial.report(value, step)

    def should_prune(self) -> bool:
        return self.trial.should_prune()


def connect(spec: TrialSpec) -> OptunaReporter:
    """The reporter for the trial a spec names."""
    study = optuna.load_study(
        study_name=spec.study_name,
        storage=storage_of(spec.storage),
        pruner=make_pruner(spec.pruner, spec.maximize),
    )
    return OptunaReporter(Trial(study, spec.trial_id))


_connected: tuple[str, OptunaReporter] | None = None  # the spec last connected, and its reporter


def current() -> OptunaReporter | None:
    """The reporter of this job's trial, connected once per spec (a GPU worker runs several jobs); None outside a
    sweep of the Optuna sweeper."""
    global _connected
    if not HydraConfig.initialized():
        return None
    text = OmegaConf.select(HydraConfig.get(), f"sweeper.{KEY}", default=None)
    if not text:
        return None
    if _connected is None or _connected[0] != text:
        _connected = (text, connect(TrialSpec.parse(text)))
    return _connected[1]
