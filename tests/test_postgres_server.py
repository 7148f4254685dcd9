"""Optuna studies on a real PostgreSQL server, shared by several processes as a distributed sweep shares them."""

from __future__ import annotations

import subprocess
import sys
import threading

import optuna
import psycopg
from optuna.storages import RDBStorage
from sqlalchemy.engine import make_url

from hydra_plugins.sftlab_optuna_sweeper._storage import open_storage

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


def fresh_database(url: str, name: str) -> str:
    """A new, empty database on the test server; its URL."""
    server = make_url(url)
    with psycopg.connect(
        host=server.host, port=server.port, user=server.username, dbname="postgres", autocommit=True
    ) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return server.set(database=name).render_as_string(hide_password=False)


def test_sweep_processes_starting_together_on_an_empty_database_all_open_it(postgres_url):
    """The nodes of a new shared study race to create Optuna's tables; every one must get the storage."""
    url = fresh_database(postgres_url, "schema_race")
    start, errors = threading.Barrier(6), []

    def node() -> None:
        start.wait()
        try:
            open_storage(url, heartbeat_interval=30)
        except Exception as error:  # collected: a thread's exception would not fail the test
            errors.append(f"{type(error).__name__}: {str(error).splitlines()[0]}")

    threads = [threading.Thread(target=node) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    study = optuna.create_study(study_name="after_the_race", storage=RDBStorage(url))
    study.optimize(lambda trial: trial.suggest_int("x", 0, 3), n_trials=2)
    assert len(study.trials) == 2
