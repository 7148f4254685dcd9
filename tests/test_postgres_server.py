"""Optuna studies on a real PostgreSQL server, shared by several processes as a distributed sweep shares them."""

from __future__ import annotations

import subprocess
import sys

import optuna
from optuna.storages import RDBStorage

optuna.logging.set_verbosity(optuna.logging.WARNING)

# One worker process: joins the study by name and adds its own trials, as each launcher job does.
WORKER = """
import sys, optuna
optuna.logging.set_verbosity(optuna.logging.WARNING)
study = optuna.load_study(study_name=sys.argv[2], storage=sys.argv[1])
study.optimize(lambda trial: trial.suggest_int("x", 0, 100), n_trials=int(sys.argv[3]))
"""


def test_study_survives_in_postgres(postgres_url):
    study = optuna.create_study(storage=postgres_url, study_name="persisted")
    study.optimize(lambda trial: (trial.suggest_float("x", -1, 1) - 0.5) ** 2, n_trials=5)

    loaded = optuna.load_study(study_name="persisted", storage=RDBStorage(postgres_url))
    assert len(loaded.trials) == 5
    assert [t.value for t in loaded.trials] == [t.value for t in study.trials]
    assert loaded.best_value == min(t.value for t in study.trials)


def test_two_processes_add_trials_to_one_study(postgres_url):
    optuna.create_study(storage=postgres_url, study_name="shared")
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, postgres_url, "shared", str(n)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for n in (4, 6)
    ]
    for worker in workers:
        output, _ = worker.communicate(timeout=60)
        assert worker.returncode == 0, output[-3000:]

    trials = optuna.load_study(study_name="shared", storage=RDBStorage(postgres_url)).trials
    assert len(trials) == 10
    assert sorted(t.number for t in trials) == list(range(10))
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
