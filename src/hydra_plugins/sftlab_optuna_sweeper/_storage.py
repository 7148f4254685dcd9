"""Where a study lives, so that several sweep processes (one per node, say) can share it, and how a dead worker's
trial is noticed.

``hydra.sweeper.storage`` may be
    ``null``                        ``sqlite:///<hydra.sweep.dir>/optuna.db``: one sweep process;
    a SQLAlchemy URL                ``postgresql+psycopg://user:pass@host/db``, ``mysql+pymysql://...``, ``sqlite:///...``:
                                    Optuna's RDBStorage; PostgreSQL is the one to share between nodes;
    ``journal:<path>`` or a path    Optuna's JournalStorage on a file (with a lock that works on NFS): shared through a
                                    filesystem every node mounts, no database server needed;
    a ``_target_`` node             any Optuna storage, instantiated as written (its own heartbeat settings).

Heartbeats
    A sweep process beats for each trial it is running (:class:`Heartbeats`); a RUNNING trial whose last beat is
    older than ``grace_period`` belonged to a worker that was killed, ran out of memory or lost its machine, and
    ``optuna.storages.fail_stale_trials`` fails it, calling ``on_stale`` (the sweeper enqueues it again). Optuna's
    RDBStorage keeps heartbeats itself. Its JournalStorage has none, so :class:`HeartbeatJournalStorage` adds them:
    the last beat is a trial system attr holding the wall-clock time (so the nodes' clocks should agree, as NTP keeps
    them, to well under the grace period).
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy.exc
from hydra.utils import instantiate
from omegaconf import OmegaConf
from optuna.storages import BaseStorage, JournalStorage, RDBStorage

# Private module: Optuna exports no base class for a storage that keeps heartbeats (RDBStorage is one).
from optuna.storages._heartbeat import BaseHeartbeat, is_heartbeat_enabled
from optuna.storages.journal import JournalFileBackend  # its default lock is a symlink lock, safe on NFS
from optuna.trial import FrozenTrial, TrialState

STORAGE_FILE = "optuna.db"
JOURNAL_PREFIX = "journal:"
HEARTBEAT_ATTR = "sftlab_heartbeat"
SCHEMA_ATTEMPTS = 4

StaleCallback = Callable[[optuna.Study, FrozenTrial], None]


class HeartbeatJournalStorage(JournalStorage, BaseHeartbeat):
    """Optuna's journal storage with the heartbeat that its RDBStorage has (see the module docstring)."""

    def __init__(
        self, path: str, heartbeat_interval: int, grace_period: int | None, on_stale: StaleCallback | None
    ) -> None:
        super().__init__(JournalFileBackend(path))
        self.heartbeat_interval = heartbeat_interval
        self.grace_period = grace_period if grace_period is not None else 2 * heartbeat_interval
        self.on_stale = on_stale

    def record_heartbeat(self, trial_id: int) -> None:
        self.set_trial_system_attr(trial_id, HEARTBEAT_ATTR, time.time())

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        now = time.time()
        return [
            trial._trial_id
            for trial in self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,))
            if HEARTBEAT_ATTR in trial.system_attrs and now - trial.system_attrs[HEARTBEAT_ATTR] > self.grace_period
        ]

    def get_heartbeat_interval(self) -> int | None:
        return self.heartbeat_interval

    def get_heartbeat_stale_trial_callback(self) -> StaleCallback | None:
        return self.on_stale


@dataclass
class SweepStorage:
    storage: BaseStorage | str
    label: str  # for log lines and optimization_results.yaml: a URL without its password, or journal:<path>
    spec: str | dict  # what a job opens (sftlab.sweep.trial.storage_of) to reach the same study

    @property
    def heartbeat_interval(self) -> int | None:
        return self.storage.get_heartbeat_interval() if is_heartbeat_enabled(self.storage) else None


def rdb_storage(url: str, **kwargs: Any) -> RDBStorage:
    """Optuna's RDBStorage on ``url``. Sweep processes started together on an empty database (the nodes of a new
    shared study) race to create its tables, and PostgreSQL answers the losers with a duplicate-key or duplicate-table
    error: a loser waits a moment and opens the storage again, and then finds the tables made."""
    for _ in range(SCHEMA_ATTEMPTS - 1):
        try:
            return RDBStorage(url, **kwargs)
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError):
            time.sleep(0.2 + random.random())
    return RDBStorage(url, **kwargs)


def _label(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def open_storage(
    spec: Any,
    sweep_dir: Path | None = None,
    heartbeat_interval: int | None = None,
    grace_period: int | None = None,
    on_stale: StaleCallback | None = None,
) -> SweepStorage:
    """The storage ``hydra.sweeper.storage`` names, with heartbeats when ``heartbeat_interval`` is set."""
    if OmegaConf.is_dict(spec) or isinstance(spec, dict):
        node = OmegaConf.to_container(spec, resolve=True) if OmegaConf.is_config(spec) else dict(spec)
        return SweepStorage(instantiate(node), str(node.get("_target_")), node)
    if spec is None:
        assert sweep_dir is not None, "the default storage lives in the sweep dir"
        sweep_dir.mkdir(parents=True, exist_ok=True)
        spec = f"sqlite:///{sweep_dir / STORAGE_FILE}"
    spec = str(spec)
    if "://" in spec:
        beats = {}
        if heartbeat_interval:
            beats = dict(
                heartbeat_interval=heartbeat_interval,
                grace_period=grace_period,
                heartbeat_stale_trial_callback=on_stale,
            )
        # SQLite is shared by the job processes on this machine: wait for a write lock rather than fail at once.
        engine_kwargs = {"connect_args": {"timeout": 60}} if spec.startswith("sqlite") else None
        with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna since 2.9; we depend on them
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            storage = rdb_storage(spec, engine_kwargs=engine_kwargs, **beats)
        return SweepStorage(storage, _label(spec), spec)
    path = Path(spec.removeprefix(JOURNAL_PREFIX)).absolute()
    path.parent.mkdir(parents=True, exist_ok=True)
    label = f"{JOURNAL_PREFIX}{path}"
    if heartbeat_interval:
        return SweepStorage(
            HeartbeatJournalStorage(str(path), heartbeat_interval, grace_period, on_stale), label, label
        )
    return SweepStorage(JournalStorage(JournalFileBackend(str(path))), label, label)


class Heartbeats:
    """Beats for the given trials every ``interval`` seconds while the block runs (no-op without heartbeats)."""

    def __init__(self, storage: BaseStorage, trial_ids: Iterable[int]):
        self.storage = storage
        self.trial_ids = list(trial_ids)
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None

    def beat(self) -> None:
        if not is_heartbeat_enabled(self.storage):
            return
        for trial_id in self.trial_ids:
            # A trial that just finished, or a storage hiccup: the next beat tries again.
            with contextlib.suppress(Exception):
                self.storage.record_heartbeat(trial_id)  # type: ignore[attr-defined]

    def run(self, interval: int) -> None:
        while not self.stop.wait(interval):
            self.beat()

    def __enter__(self) -> Heartbeats:
        if is_heartbeat_enabled(self.storage):
            self.beat()
            interval = self.storage.get_heartbeat_interval()  # type: ignore[attr-defined]
            self.thread = threading.Thread(target=self.run, args=(interval,), daemon=True, name="optuna-heartbeat")
            self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join()
