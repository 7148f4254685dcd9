"""The study's ``n_trials`` slots, shared by any number of sweep processes: who holds one, how a process claims one,
and the trials that wait in the study (fixed trials, retries).

The study's trials take slots: finished ones (complete, pruned, failed), running ones (this process's or another's)
and waiting ones (enqueued fixed trials and retries). A failed trial that was retried gives its slot to its retry. A
process asks for a trial only while a slot is free, and since Optuna numbers trials atomically in the storage, a
trial that finds ``n_trials`` slot-takers numbered before it was asked in a race for the last slot: it is told FAIL
as ``surplus`` before it runs and takes no slot. So the processes together run exactly ``n_trials`` trials, none
twice. With fixed trials, processes that start together may each enqueue them: a parameter set then holds one slot,
its lowest-numbered trial's, and its other copies are told FAIL as ``surplus`` when asked.
"""

from __future__ import annotations

import logging
import os
import socket
import warnings
from typing import Any

import optuna
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, Trial, TrialState

from ._storage import Heartbeats

log = logging.getLogger(__name__)

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def point_key(params: dict[str, Any]) -> tuple:
    """A parameter set as a hashable key: sorted (name, value) pairs, bools kept apart from ints."""
    return tuple(sorted((str(name), (type(value).__name__, value)) for name, value in params.items()))


def intended_params(trial: FrozenTrial) -> dict[str, Any]:
    """The parameters a trial was enqueued with (a fixed trial, a retry), else those it suggested.

    The enqueued ones first: a process killed between two suggestions leaves a trial with part of its point in
    ``params``, and that part would neither hold the point (so a resumed design enqueued it again) nor retry it whole.
    """
    return dict(trial.system_attrs.get("fixed_params") or trial.params or {})


def slot_holders(trials: list[FrozenTrial], fixed: bool = False) -> list[FrozenTrial]:
    """The trials that are the study's ``n_trials``, in number order; with ``fixed`` trials, a parameter set enqueued
    twice holds one slot, its lowest-numbered trial's."""
    retried = {t.user_attrs["retry_of"] for t in trials if "retry_of" in t.user_attrs}
    holders, points = [], set()
    for trial in sorted(trials, key=lambda t: t.number):
        if trial.user_attrs.get("surplus") or (trial.state == TrialState.FAIL and trial.number in retried):
            continue
        if fixed:
            point = point_key(intended_params(trial))
            if point in points:
                continue
            points.add(point)
        holders.append(trial)
    return holders


def finished_trials(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    return [t for t in slot_holders(trials) if t.state in FINISHED]


def tell(study: optuna.Study, trial: Trial | int, state: TrialState, values: list[float] | None = None) -> None:
    """``study.tell``; GridSampler calls ``study.stop()`` once the grid is covered, which only ``optimize`` allows
    (the state is stored before that error)."""
    try:
        study.tell(trial, values if state == TrialState.COMPLETE else None, state=state)
    except RuntimeError as error:
        if "Study.stop" not in str(error):
            raise


def claim(study: optuna.Study, storage: BaseStorage, n_trials: int, fixed: bool = False) -> Trial | None:
    """A trial to run, or None when the study's ``n_trials`` slots are taken.

    An asked trial that lost the race for the last slot, or whose fixed parameter set another trial holds, is told
    FAIL as ``surplus`` before it runs.
    """
    while True:
        trials = study.get_trials(deepcopy=False)
        if len(slot_holders(trials, fixed)) >= n_trials and not any(t.state == TrialState.WAITING for t in trials):
            return None
        with warnings.catch_warnings():  # Optuna says heartbeats go with Study.optimize; ask/tell beats them itself
            warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")
            trial = study.ask()
        # Beat at once: a RUNNING trial that never beat is never found stale, so a process killed before its batch
        # started beating would leave it RUNNING, and the others waiting on it, for good.
        Heartbeats(storage, [trial._trial_id]).beat()
        holders = [held.number for held in slot_holders(study.get_trials(deepcopy=False), fixed)]
        if trial.number in holders and holders.index(trial.number) < n_trials:
            return trial
        duplicate = trial.number not in holders
        trial.set_user_attr("surplus", True)
        trial.set_user_attr(
            "reason",
            "surplus: its fixed parameters were enqueued twice, and an earlier trial has them"
            if duplicate
            else f"surplus: {n_trials} trials were asked before this one (by other processes)",
        )
        tell(study, trial, TrialState.FAIL)
        if not duplicate:  # after a duplicate fixed trial, the next waiting one may still be free
            return None


def retry(study: optuna.Study, trial: FrozenTrial, why: str) -> None:
    """Enqueue the parameters of a trial that stopped through no fault of its own; a retry is not retried again."""
    params = intended_params(trial)
    if "retry_of" in trial.user_attrs or not params:
        log.warning(f"trial {trial.number} stopped ({why}); not retried (it was a retry, or had no parameters yet)")
        return
    study.enqueue_trial(params, user_attrs={"retry_of": trial.number, "retry_reason": why})
    log.warning(f"trial {trial.number} stopped ({why}): its parameters are enqueued again")


def retry_stale(study: optuna.Study, trial: FrozenTrial) -> None:
    """Optuna's heartbeat-stale callback: the trial was just failed by ``fail_stale_trials``."""
    retry(study, trial, "its sweep process stopped beating: killed, out of memory or its machine lost")


def enqueue_fixed(study: optuna.Study, points: list[dict[str, Any]]) -> None:
    """Enqueue the fixed trials the study does not hold yet: finished and counted, running (a dead process's is
    retried once found stale), or waiting (an interrupted trial's retry, or another process's enqueue)."""
    held = {point_key(intended_params(trial)) for trial in slot_holders(study.get_trials(deepcopy=False))}
    for index, point in enumerate(points):
        if point_key(point) not in held:
            study.enqueue_trial(point, user_attrs={"fixed_trial": index})
