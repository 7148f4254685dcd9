"""The sweep: a persistent Optuna study asked for parameters, told each job's outcome, shared by any number of sweep
processes, resumable after a kill.

Study and storage
    ``storage: null`` keeps the study in ``sqlite:///<hydra.sweep.dir>/optuna.db``; a SQLAlchemy URL (PostgreSQL)
    or ``journal:<path>`` lets several sweep processes, one per node say, share it (``_storage``). The study is
    created with ``load_if_exists=True``, so rerunning with the same storage and ``study_name`` resumes it, and
    starting another process with them joins it. Each job's run dir is ``<sweep dir>/<trial number>``.

Exactly ``n_trials``, shared
    The study's trials take slots: finished ones (complete, pruned, failed), running ones (this process's or
    another's) and waiting ones (enqueued design points and retries). A failed trial that was retried gives its slot
    to its retry. A process asks for a trial only while a slot is free, and since Optuna numbers trials atomically in
    the storage, a trial that finds ``n_trials`` slot-takers numbered before it was asked in a race for the last slot:
    it is told FAIL as ``surplus`` before it runs and takes no slot. So the processes together run exactly
    ``n_trials`` trials, none twice. A process with nothing left to ask waits while other processes' trials run, so
    that a dead worker's trial is retried by whoever is still alive.

Dead workers
    Each process beats for the trials it runs (``heartbeat_interval``, Optuna's heartbeat). Before each batch,
    ``optuna.storages.fail_stale_trials`` fails RUNNING trials whose beats stopped for ``grace_period`` (their worker
    was killed, ran out of memory or lost its machine) and :func:`retry` enqueues their parameters once. Ctrl-C fails
    and enqueues the running trials the same way.

Outcomes
    A job that returns a number completes its trial. A job that returns ``None`` (the sftlab entry point does so in a
    multirun after writing ``failure.json``) or raises is FAIL, with the reason in the user attrs ``reason`` and
    ``error_type``; a ``TrialPruned`` failure is PRUNED. The sweep goes on.

Pruning
    Each job gets its trial in its environment (``reporting``), reports ``eval_loss`` at each evaluation straight to
    the storage and stops when the pruner says so, whichever launcher runs it.

Parallel jobs
    ``n_jobs`` trials are asked at once and handed to the launcher as one batch (``null``: the launcher's own
    ``n_jobs``, e.g. one per GPU with ``hydra/launcher=gpus``; 1 for the basic launcher). TPE's ``constant_liar``
    keeps two running trials off the same point.

Designs
    With ``design`` (``conf/design/*.yaml``), the study runs a factorial design (``sftlab.design``): each row
    crossed with each seed is one fixed trial, enqueued (``study.enqueue_trial``) unless the study already holds it
    (finished, or waiting), and ``n_trials`` is rows x seeds. A resumed design thus runs only its missing points,
    and an interrupted point is retried once as above. The factors and the seed join the search space as
    ``choice(false, true)`` and ``choice(<seeds>)``, so their names are checked and every level composes before the
    first trial; the sampler is never asked for a point of its own (a trial that is not a design point stops the
    sweep). The design, its aliasing and its points are written to ``<sweep dir>/design.json`` first. Processes that
    start a shared design together may each enqueue its points: a point then holds one slot, its lowest-numbered
    trial's, and its other copies are told FAIL as ``surplus`` when asked.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import time
import warnings
import zlib
from pathlib import Path
from typing import Any

import optuna
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn, JobStatus
from hydra.errors import CompactHydraException
from hydra.types import HydraContext, TaskFunction
from hydra.utils import get_method, instantiate
from omegaconf import DictConfig, OmegaConf
from optuna.distributions import BaseDistribution, CategoricalDistribution, IntDistribution
from optuna.storages import BaseStorage, fail_stale_trials
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, Trial, TrialState

from sftlab.sweep import TrialPruned, rundir
from sftlab.sweep import designs as design_lib
from sftlab.sweep import trial as trial_contract

from . import _artifacts
from . import _reporting as reporting
from ._search_space import SearchSpace, SweepConfigError, check_names, parse
from ._storage import Heartbeats, SweepStorage, open_storage

log = logging.getLogger(__name__)

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


class SweepFailed(CompactHydraException):
    """The sweep stopped: too many failed trials (max_failure_rate)."""


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def retried_numbers(trials: list[FrozenTrial]) -> set[int]:
    return {t.user_attrs["retry_of"] for t in trials if "retry_of" in t.user_attrs}


def slot_holders(trials: list[FrozenTrial], design: bool = False) -> list[FrozenTrial]:
    """The trials that are the study's ``n_trials`` (see "Exactly n_trials, shared"), in number order. In a design
    (``design``), a point enqueued twice, by processes that started the study together, holds one slot: its
    lowest-numbered trial's."""
    retried = retried_numbers(trials)
    holders, points = [], set()
    for trial in sorted(trials, key=lambda t: t.number):
        if trial.user_attrs.get("surplus") or (trial.state == TrialState.FAIL and trial.number in retried):
            continue
        if design:
            point = _point_key(intended_params(trial))
            if point in points:
                continue
            points.add(point)
        holders.append(trial)
    return holders


def finished_trials(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    return [t for t in slot_holders(trials) if t.state in FINISHED]


def claim(study: optuna.Study, storage: BaseStorage, n_trials: int, design: bool = False) -> Trial | None:
    """A trial to run, or None when the study's ``n_trials`` slots are taken (see "Exactly n_trials, shared").

    An asked trial that lost the race for the last slot, or whose design point another trial holds, is told FAIL as
    ``surplus`` before it runs.
    """
    while True:
        trials = study.get_trials(deepcopy=False)
        if len(slot_holders(trials, design)) >= n_trials and not any(t.state == TrialState.WAITING for t in trials):
            return None
        with warnings.catch_warnings():  # Optuna says heartbeats go with Study.optimize; ask/tell beats them itself
            warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")
            trial = study.ask()
        # Beat at once: a RUNNING trial that never beat is never found stale, so a process killed before its batch
        # started beating would leave it RUNNING, and the others waiting on it, for good.
        Heartbeats(storage, [trial._trial_id]).beat()
        holders = [held.number for held in slot_holders(study.get_trials(deepcopy=False), design)]
        if trial.number in holders and holders.index(trial.number) < n_trials:
            return trial
        duplicate = trial.number not in holders
        trial.set_user_attr("surplus", True)
        trial.set_user_attr(
            "reason",
            "surplus: its design point was enqueued twice, and an earlier trial has it"
            if duplicate
            else f"surplus: {n_trials} trials were asked before this one (by other processes)",
        )
        tell(study, trial, TrialState.FAIL)
        if not duplicate:  # after a duplicate design point, the next waiting one may still be free
            return None


def intended_params(trial: FrozenTrial) -> dict[str, Any]:
    """The trial's parameters; for an enqueued one (a design point, a retry) that has not suggested them yet, because it
    is waiting or its process died between ``study.ask()`` and the suggestions, those it was enqueued with."""
    return dict(trial.params or trial.system_attrs.get("fixed_params") or {})


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


def enqueue_design(study: optuna.Study, points: list[dict[str, Any]]) -> None:
    """Enqueue the design points the study does not hold yet: finished and counted, running (a dead process's is
    retried once found stale), or waiting (an interrupted point's retry, or another process's enqueue)."""
    held = {_point_key(intended_params(trial)) for trial in slot_holders(study.get_trials(deepcopy=False))}
    for index, point in enumerate(points):
        if _point_key(point) not in held:
            study.enqueue_trial(point, user_attrs={"design_point": index})


def _point_key(params: dict[str, Any]) -> tuple:
    """A design point as a hashable key: sorted (name, value) pairs, bools kept apart from ints."""
    return tuple(sorted((str(name), (type(value).__name__, value)) for name, value in params.items()))


def _suggest(trial: Trial, name: str, dist: BaseDistribution) -> None:
    if isinstance(dist, CategoricalDistribution):
        trial.suggest_categorical(name, dist.choices)
    elif isinstance(dist, IntDistribution):
        trial.suggest_int(name, dist.low, dist.high, step=dist.step, log=dist.log)
    else:
        trial.suggest_float(name, dist.low, dist.high, step=dist.step, log=dist.log)


def tell(study: optuna.Study, trial: Trial | int, state: TrialState, value: float | None = None) -> None:
    """``study.tell``; GridSampler calls ``study.stop()`` once the grid is covered, which only ``optimize`` allows
    (the state is stored before that error)."""
    try:
        study.tell(trial, value if state == TrialState.COMPLETE else None, state=state)
    except RuntimeError as error:
        if "Study.stop" not in str(error):
            raise


def _direction(value: Any) -> StudyDirection:
    if OmegaConf.is_list(value) or isinstance(value, (list, tuple)):
        if len(value) != 1:
            raise SweepConfigError(
                f"hydra.sweeper.direction: {list(value)}: one objective only (the task returns one value)"
            )
        value = value[0]
    name = str(getattr(value, "name", value)).lower()
    if name not in ("minimize", "maximize"):
        raise SweepConfigError(f"hydra.sweeper.direction: {value!r} is neither minimize nor maximize")
    return StudyDirection.MINIMIZE if name == "minimize" else StudyDirection.MAXIMIZE


def _container(node: Any) -> dict[str, Any]:
    if OmegaConf.is_config(node):
        return OmegaConf.to_container(node, resolve=True)  # type: ignore[return-value]
    return dict(node)


def job_outcome(ret: JobReturn) -> tuple[TrialState, float | None, dict[str, Any]]:
    """The trial state, value and user attrs for one job's return."""
    attrs: dict[str, Any] = {}
    run_dir = OmegaConf.select(ret.hydra_cfg, "hydra.runtime.output_dir") if ret.hydra_cfg is not None else None
    if run_dir:
        attrs["run_dir"] = str(run_dir)
    if ret.status != JobStatus.COMPLETED:
        error = ret._return_value
        attrs.update(reason=str(error) or type(error).__name__, error_type=type(error).__name__)
        return TrialState.FAIL, None, attrs
    value = ret.return_value
    if value is None:
        failure_path = Path(run_dir) / rundir.FAILURE if run_dir else None
        failure = rundir.read_json(failure_path) if failure_path and failure_path.is_file() else None
        pruned = failure is not None and failure.get("type") == TrialPruned.__name__
        if failure is not None:
            attrs.update(reason=failure.get("message"), error_type=failure.get("type"))
        else:
            attrs["reason"] = "the task returned None"
        return (TrialState.PRUNED if pruned else TrialState.FAIL), None, attrs
    try:
        number = float(value)
    except (TypeError, ValueError):
        return TrialState.FAIL, None, {**attrs, "reason": f"the task returned {value!r}, not a number"}
    if math.isnan(number):
        return TrialState.FAIL, None, {**attrs, "reason": "the task returned NaN"}
    return TrialState.COMPLETE, number, attrs


class OptunaSweep:
    def __init__(
        self,
        sampler: Any,
        direction: Any,
        storage: Any,
        study_name: str | None,
        n_trials: int,
        n_jobs: int | None,
        max_failure_rate: float,
        params: DictConfig | None,
        custom_search_space: str | None,
        pruner: Any,
        design: Any = None,
        heartbeat_interval: int | None = None,
        grace_period: int | None = None,
    ) -> None:
        if not 0.0 <= max_failure_rate <= 1.0:
            raise SweepConfigError(f"hydra.sweeper.max_failure_rate={max_failure_rate}: expected 0.0 to 1.0")
        if n_jobs is not None and n_jobs < 1:
            raise SweepConfigError(f"hydra.sweeper.n_jobs={n_jobs}: expected at least 1 (or null: the launcher's)")
        for name, seconds in (("heartbeat_interval", heartbeat_interval), ("grace_period", grace_period)):
            if seconds is not None and seconds < 1:
                raise SweepConfigError(f"hydra.sweeper.{name}={seconds}: expected whole seconds >= 1, or null")
        self.sampler_cfg = sampler
        self.direction = _direction(direction)
        self.storage_cfg = storage
        self.study_name = study_name
        self.n_trials = int(n_trials)
        self.n_jobs = n_jobs
        self.max_failure_rate = float(max_failure_rate)
        self.params = params
        self.custom_search_space = get_method(custom_search_space) if custom_search_space else None
        self.pruner_cfg = pruner
        self.design_cfg = design
        self.heartbeat_interval = heartbeat_interval
        self.grace_period = grace_period

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            config=config, hydra_context=hydra_context, task_function=task_function
        )
        self.sweep_dir = Path(str(config.hydra.sweep.dir)).absolute()

    # ------------------------------------------------------------------------------------------------ set-up

    def check_space(self, space: SearchSpace) -> None:
        """Names, then values: compose a job config with every choice and both ends of every range."""
        check_names(space, self.config)
        for overrides in space.probe_overrides():
            try:
                self.hydra_context.config_loader.load_sweep_config(self.config, overrides)
            except Exception as error:
                message = " ".join(str(error).split())
                if error.__cause__ is not None:
                    message += ": " + " ".join(str(error.__cause__).split("\n")[0].split())
                raise SweepConfigError(
                    f"sweep parameters: a job config does not compose ({message}); no trial was run"
                ) from None

    def make_sampler(self, space: SearchSpace, seed_offset: int) -> optuna.samplers.BaseSampler:
        """The configured sampler; a resumed study shifts a fixed seed by its trial count, not to replay trials."""
        cfg = _container(self.sampler_cfg) if self.sampler_cfg is not None else {}
        cfg.pop("_partial_", None)
        target = str(cfg.get("_target_", ""))
        if cfg.get("seed") is not None and seed_offset:
            cfg["seed"] = int(cfg["seed"]) + seed_offset
        if target.rsplit(".", 1)[-1] == "GridSampler":
            cfg["search_space"] = space.grid()
        if not target:
            return optuna.samplers.TPESampler(seed=cfg.get("seed"))
        return instantiate(cfg)

    def launcher_jobs(self) -> int:
        """How many jobs the launcher runs at once: its ``n_jobs`` (a negative one read as joblib reads it), or 1."""
        n_jobs = getattr(self.launcher, "n_jobs", None) or OmegaConf.select(self.config, "hydra.launcher.n_jobs")
        if n_jobs is None:
            return 1
        return int(n_jobs) if int(n_jobs) > 0 else max(1, (os.cpu_count() or 1) + 1 + int(n_jobs))

    def design_space(self, arguments: list[str]) -> tuple[list[str], list[dict[str, Any]]]:
        """The design's factor and seed sweeps (as command-line sweeps, after the user's), its points, design.json."""
        spec = _container(self.design_cfg)
        try:
            design = design_lib.build(spec)
            seeds = design_lib.seeds_of(spec, int(self.config.get("seed", 0) or 0))
        except design_lib.DesignError as error:
            raise SweepConfigError(f"hydra.sweeper.design: {error}") from None
        keys = [f"{design.prefix}.{factor}" for factor in design.factors] + ["seed"]
        clashing = [line for line in arguments if line.split("=", 1)[0].lstrip("+~") in keys]
        clashing += [str(name) for name in (self.params or {}) if str(name) in keys]
        if clashing:
            raise SweepConfigError(
                f"{', '.join(clashing)}: set by hydra.sweeper.design (its factors and seeds); no trial was run"
            )
        lines = [f"{key}=choice(false,true)" for key in keys[:-1]]
        lines.append(f"seed=choice({','.join(str(s) for s in seeds)})")
        design_lib.write(design, seeds, self.sweep_dir)
        log.info("design: " + "; ".join(design.describe()[:4]))
        return lines, design.points(seeds)

    # ------------------------------------------------------------------------------------------------ sweep

    def configure_trial(self, trial: Trial, space: SearchSpace) -> list[str]:
        for name, dist in space.distributions.items():
            _suggest(trial, name, dist)
        if self.custom_search_space is not None:
            self.custom_search_space(self.config, trial)
        overrides = space.trial_overrides(trial.params)
        trial.set_user_attr("worker", worker_id())
        trial.set_user_attr("overrides", overrides)
        return overrides

    def launch(
        self, study: optuna.Study, trials: list[Trial], overrides: list[list[str]], pruner: dict | None
    ) -> list[JobReturn]:
        """Run the trials' jobs as one launcher batch, beating for them; the job dir is the trial number."""
        jobs = []
        for trial, lines in zip(trials, overrides, strict=True):
            spec = reporting.job_spec(self.storage.spec, study.study_name, trial._trial_id, pruner, self.direction)
            jobs.append(
                [*lines, f"hydra.sweep.subdir={trial.number}", reporting.env_override(trial_contract.ENV, spec)]
            )
        with Heartbeats(self.storage.storage, [trial._trial_id for trial in trials]):
            return list(self.launcher.launch(jobs, initial_job_idx=trials[0].number))

    def sweep(self, arguments: list[str]) -> None:
        points: list[dict[str, Any]] | None = None
        if self.design_cfg is not None:
            design_lines, points = self.design_space(arguments)
            arguments = [*arguments, *design_lines]
        space = parse(self.params, arguments)
        self.check_space(space)
        if not space.distributions and self.custom_search_space is None:
            log.warning("hydra.sweeper.params has nothing to sweep: every trial runs the same config")

        self.storage: SweepStorage = open_storage(
            self.storage_cfg, self.sweep_dir, self.heartbeat_interval, self.grace_period, retry_stale
        )
        study_name = self.study_name or str(self.config.hydra.job.name)
        pruner_node = _container(self.pruner_cfg) if self.pruner_cfg is not None else None
        study = optuna.create_study(
            storage=self.storage.storage,
            study_name=study_name,
            direction=self.direction,
            pruner=reporting.make_pruner(pruner_node, self.direction),
            load_if_exists=True,
        )
        if study.direction != self.direction:
            raise SweepConfigError(
                f"study '{study_name}' in {self.storage.label} was created to {study.direction.name.lower()}, this "
                f"sweep would {self.direction.name.lower()}: use another hydra.sweeper.study_name or storage"
            )
        # A resumed study shifts a fixed seed by its trial count; a shared one (an explicit storage) also by this
        # process, so that processes starting together do not draw the same random start-up points.
        offset = len(study.trials) + (zlib.crc32(worker_id().encode()) % 10_000 if self.storage_cfg else 0)
        study.sampler = self.make_sampler(space, seed_offset=offset)
        log.info(
            f"Optuna study '{study_name}' in {self.storage.label}: {self.direction.name.lower()}, "
            f"sampler {type(study.sampler).__name__}, pruner {type(study.pruner).__name__}"
            + (f", heartbeat every {self.storage.heartbeat_interval} s" if self.storage.heartbeat_interval else "")
        )
        n_trials = self.n_trials
        if isinstance(study.sampler, optuna.samplers.GridSampler):
            n_trials = min(n_trials, math.prod(len(values) for values in space.grid().values()))
        design_keys: set[tuple] | None = None
        if points is not None:
            if n_trials != len(points):
                log.info(f"design: n_trials is rows x seeds = {len(points)} (hydra.sweeper.n_trials={n_trials} unused)")
            n_trials = len(points)
            enqueue_design(study, points)
            design_keys = {_point_key(point) for point in points}
        batch_size = self.n_jobs or self.launcher_jobs()
        done = len(finished_trials(study.get_trials(deepcopy=False)))
        log.info(
            f"{done} of {n_trials} trials finished; this process runs up to {batch_size} at once; "
            f"sweep dir {self.sweep_dir}"
        )

        design = design_keys is not None
        failed = ran = 0
        waiting_logged = False
        while True:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                fail_stale_trials(study)
            trials: list[Trial] = []
            while len(trials) < batch_size and (trial := claim(study, self.storage.storage, n_trials, design)):
                trials.append(trial)
            if not trials:
                running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
                if not running:
                    break
                interval = self.storage.heartbeat_interval
                if interval is None:
                    log.warning(f"{len(running)} trial(s) still RUNNING elsewhere; no heartbeats to wait on: done")
                    break
                if not waiting_logged:
                    log.info(f"waiting for trial(s) {[t.number for t in running]}, running in other processes")
                    waiting_logged = True
                time.sleep(min(interval, 2))  # a query for RUNNING trials: cheap, and the sweep ends soon after
                continue
            waiting_logged = False
            states = self.run_batch(study, trials, space, pruner_node, design_keys)
            failed += states.count(TrialState.FAIL)
            ran += len(trials)
            if failed / ran > self.max_failure_rate:
                _artifacts.write_all(study, self.sweep_dir, space, self.config, self.storage.label)
                raise SweepFailed(
                    f"{failed} of {ran} trials failed, more than max_failure_rate={self.max_failure_rate}: "
                    f"sweep stopped (reasons in {self.sweep_dir / _artifacts.TRIALS})"
                )

        results = _artifacts.write_all(study, self.sweep_dir, space, self.config, self.storage.label)
        if results["best_trial"] is not None:
            log.info(f"Best trial {results['best_trial']}: value {results['best_value']}, {results['best_params']}")
            log.info(f"Rerun it: {results['rerun']}")
        log.info(f"Sweep artifacts in {self.sweep_dir}: {_artifacts.RESULTS}, {_artifacts.TRIALS}, plots")

    def run_batch(
        self,
        study: optuna.Study,
        trials: list[Trial],
        space: SearchSpace,
        pruner: dict | None,
        design_keys: set[tuple] | None,
    ) -> list[TrialState]:
        """Launch one batch and tell the study each trial's outcome."""
        try:
            overrides = [self.configure_trial(trial, space) for trial in trials]
            if design_keys is not None:
                strays = [t.number for t in trials if _point_key(t.params) not in design_keys]
                if strays:
                    raise SweepConfigError(f"trial(s) {strays}: not a point of the design (the sampler was asked)")
            returns = self.launch(study, trials, overrides, pruner)
        except SweepConfigError:
            for trial in trials:
                trial.set_user_attr("reason", "not a design point")
                tell(study, trial, TrialState.FAIL)
            raise
        except KeyboardInterrupt:
            for trial in trials:
                trial.set_user_attr("reason", "interrupted: the sweep was stopped (Ctrl-C)")
                tell(study, trial, TrialState.FAIL)
                retry(study, study._storage.get_trial(trial._trial_id), "the sweep was stopped (Ctrl-C)")
            raise
        except Exception as error:  # the launcher could not run the jobs: fail their trials, go on
            log.warning(f"trial(s) {[t.number for t in trials]} could not be launched: {error}")
            for trial in trials:
                trial.set_user_attr("reason", f"not launched: {error}")
                trial.set_user_attr("error_type", type(error).__name__)
                tell(study, trial, TrialState.FAIL)
            return [TrialState.FAIL] * len(trials)
        states = []
        for trial, ret in zip(trials, returns, strict=True):
            state, value, attrs = job_outcome(ret)
            for key, attr in attrs.items():
                trial.set_user_attr(key, attr)
            tell(study, trial, state, value)
            states.append(state)
            if state != TrialState.COMPLETE:
                log.warning(f"trial {trial.number} {state.name}: {attrs.get('reason')}")
        return states
