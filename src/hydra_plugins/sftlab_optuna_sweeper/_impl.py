"""The sweep: a persistent Optuna study asked for parameters, told each job's outcome, shared by any number of sweep
processes, resumable after a kill. ``OptunaSweep.sweep`` reads as its three parts: :meth:`~OptunaSweep.prepare`
(search space, checks, study, sampler), :meth:`~OptunaSweep.run_trials` (batches until the study's slots are
taken) and :meth:`~OptunaSweep.finish` (the sweep dir's files, the exit status).

Study and storage
    ``storage: null`` keeps the study in ``sqlite:///<hydra.sweep.dir>/optuna.db``; a SQLAlchemy URL (PostgreSQL)
    or ``journal:<path>`` lets several sweep processes, one per node say, share it (``_storage``). The study is
    created with ``load_if_exists=True``, so rerunning with the same storage and ``study_name`` resumes it, and
    starting another process with them joins it. Each job's run dir is ``<sweep dir>/<trial number>``. Exactly
    ``n_trials`` run between all the processes (``_slots``).

Objectives
    ``direction`` is one direction or a list; the task returns one value per direction (``_outcome``), and
    ``metric_names`` names them in the study (``study.set_metric_names``), as optuna-dashboard shows them. A
    multi-objective study is not pruned (Optuna prunes single-objective studies only).

Seeds
    A fixed ``sampler.seed`` is used as given on a fresh study, whatever the storage, so a sweep reproduces its
    trials. A resumed study shifts it by its trial count (not to replay the trials it has), and each sweep process
    that opens the study registers itself there and shifts it by its place among them (0 for the first), so that
    processes sharing a study do not draw the same start-up points. Best effort: the places come from the
    processes' clocks, and a shared study's trials depend on which process asks first anyway.

Dead workers
    Each process beats for the trials it runs (``heartbeat_interval``, Optuna's heartbeat). Before each batch,
    ``optuna.storages.fail_stale_trials`` fails RUNNING trials whose beats stopped for ``grace_period`` (their worker
    was killed, ran out of memory or lost its machine) and ``_slots.retry`` enqueues their parameters once. Ctrl-C
    fails and enqueues the running trials the same way, and ends the sweep with one line and exit status 130.

Outcomes and failures
    ``_outcome`` turns each job's return into COMPLETE, PRUNED or FAIL with a ``reason``; each trial also records
    its ``run_dir`` and, when the run is tracked, ``wandb_id`` and ``wandb_url`` (user attrs). The sweep stops,
    exiting non-zero, once more than ``max_failure_rate`` of this process's trials failed, counted over at least
    :data:`JUDGED_OVER` trials; a sweep whose trials all failed exits non-zero whatever the rate. Configuration
    errors (a search space that does not compose, inverted bounds, a sampler that cannot be made or cannot sample)
    are one line before any trial runs.

Pruning
    Each job gets its trial in its config (``sftlab.sweep.trial``), reports ``eval_loss`` at each evaluation straight
    to the storage and stops when the pruner says so, whichever launcher runs it.

Parallel jobs
    ``n_jobs`` trials are asked at once and handed to the launcher as one batch (``null``: the launcher's own
    ``n_jobs``, e.g. one per GPU with ``hydra/launcher=gpus``; 1 for the basic launcher). TPE's ``constant_liar``
    keeps two running trials off the same point.

Fixed trials
    With ``design`` (``conf/design/*.yaml``) the study runs the design's points, which the seam hands over as plain
    parameter dicts (``sftlab.sweep.design_trials``): each is enqueued once (``study.enqueue_trial``) unless the
    study holds it already, ``n_trials`` is their count, and the sampler is never asked for a point of its own (a
    trial that is not one stops the sweep). Their keys join the search space as ``choice(<their values>)``, so the
    names are checked and every value composes before the first trial. A resumed study runs only the missing ones.
"""

from __future__ import annotations

import logging
import math
import os
import random
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn
from hydra.errors import CompactHydraException
from hydra.types import HydraContext, TaskFunction
from hydra.utils import get_method, instantiate
from omegaconf import DictConfig, OmegaConf
from optuna.distributions import BaseDistribution, CategoricalDistribution, IntDistribution
from optuna.storages import fail_stale_trials
from optuna.study import StudyDirection
from optuna.trial import Trial, TrialState

from sftlab.sweep import design_trials
from sftlab.sweep.trial import TrialSpec, make_pruner

from . import _artifacts
from ._outcome import job_outcome
from ._search_space import SearchSpace, SweepConfigError, check_names, parse
from ._slots import claim, enqueue_fixed, finished_trials, point_key, retry, retry_stale, tell, worker_id
from ._storage import Heartbeats, SweepStorage, open_storage

log = logging.getLogger(__name__)

JUDGED_OVER = 4  # max_failure_rate is judged over at least this many trials: one early failure is not a rate
INTERRUPTED = 130  # the shell's exit status for Ctrl-C
WORKER_ATTR = "sftlab_worker:"  # study system attr, one per sweep process that opened the study
PROBE_TRIALS = 12  # past the start-up trials of Optuna's default samplers (10; CMA-ES 1)


class SweepFailed(CompactHydraException):
    """The sweep ended with failed trials only, or more of them than max_failure_rate allows."""


def one_line(error: BaseException) -> str:
    text = " ".join(str(error).split("\n")[0].split()) or type(error).__name__
    if error.__cause__ is not None:
        text += ": " + one_line(error.__cause__)
    return text


def _container(node: Any) -> Any:
    if OmegaConf.is_config(node):
        return OmegaConf.to_container(node, resolve=True)
    return node


def directions_of(value: Any) -> list[StudyDirection]:
    """``direction`` (a name, an official-plugin enum, or a list of them) as Optuna's directions."""
    items = list(value) if OmegaConf.is_list(value) or isinstance(value, (list, tuple)) else [value]
    if not items:
        raise SweepConfigError("hydra.sweeper.direction: an empty list (expected minimize, maximize or a list)")
    directions = []
    for item in items:
        name = str(getattr(item, "name", item)).lower()
        if name not in ("minimize", "maximize"):
            raise SweepConfigError(f"hydra.sweeper.direction: {item!r} is neither minimize nor maximize")
        directions.append(StudyDirection.MINIMIZE if name == "minimize" else StudyDirection.MAXIMIZE)
    return directions


def _suggest(trial: Trial, name: str, dist: BaseDistribution) -> None:
    if isinstance(dist, CategoricalDistribution):
        trial.suggest_categorical(name, dist.choices)
    elif isinstance(dist, IntDistribution):
        trial.suggest_int(name, dist.low, dist.high, step=dist.step, log=dist.log)
    else:
        trial.suggest_float(name, dist.low, dist.high, step=dist.step, log=dist.log)


def _hydra_value(value: Any) -> str:
    """A parameter value as Hydra's override grammar reads it back as the same value."""
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    if isinstance(value, (int, float)):
        return repr(value)
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def fixed_space(points: list[dict[str, Any]], arguments: list[str], params: Any) -> list[str]:
    """The fixed trials' keys as choice sweeps (appended to the command line's), checked against the user's sweeps."""
    keys = list(dict.fromkeys(key for point in points for key in point))
    clashing = [line for line in arguments if line.split("=", 1)[0].lstrip("+~") in keys]
    clashing += [str(name) for name in (params or {}) if str(name) in keys]
    if clashing:
        raise SweepConfigError(
            f"{', '.join(clashing)}: set by hydra.sweeper.design (its fixed trials); no trial was run"
        )
    lines = []
    for key in keys:
        # Sorted, so that a resumed study finds the same distribution; keyed by type, so True and 1 stay apart.
        values = sorted({(type(point[key]).__name__, point[key]) for point in points if key in point})
        lines.append(f"{key}=choice({','.join(_hydra_value(value) for _, value in values)})")
    return lines


@dataclass
class Plan:
    """What the sweep loop needs, decided once by ``prepare``."""

    space: SearchSpace
    study: optuna.Study
    n_trials: int
    batch_size: int
    fixed: set[tuple] | None  # the fixed trials' keys (the sampler is never asked), or None
    spec_pruner: dict | None  # the pruner node each job's TrialSpec carries
    report_to_jobs: bool  # single-objective: jobs report intermediate values to their trial


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
        metric_names: Any = None,
        design: Any = None,
        heartbeat_interval: int | None = None,
        grace_period: int | None = None,
    ) -> None:
        if not 0.0 <= max_failure_rate <= 1.0:
            raise SweepConfigError(f"hydra.sweeper.max_failure_rate={max_failure_rate}: expected 0.0 to 1.0")
        if n_jobs is not None and n_jobs < 1:
            raise SweepConfigError(f"hydra.sweeper.n_jobs={n_jobs}: expected at least 1 (or null: the launcher's)")
        if n_trials < 1:
            raise SweepConfigError(f"hydra.sweeper.n_trials={n_trials}: expected at least 1")
        for name, seconds in (("heartbeat_interval", heartbeat_interval), ("grace_period", grace_period)):
            if seconds is not None and seconds < 1:
                raise SweepConfigError(f"hydra.sweeper.{name}={seconds}: expected whole seconds >= 1, or null")
        self.sampler_cfg = sampler
        self.directions = directions_of(direction)
        names = _container(metric_names)
        self.metric_names = None if names is None else [str(n) for n in ([names] if isinstance(names, str) else names)]
        if self.metric_names is not None and len(self.metric_names) != len(self.directions):
            raise SweepConfigError(
                f"hydra.sweeper.metric_names={self.metric_names}: one name per direction "
                f"({len(self.directions)}) expected"
            )
        self.storage_cfg = storage
        self.study_name = study_name
        self.n_trials = int(n_trials)
        self.n_jobs = n_jobs
        self.max_failure_rate = float(max_failure_rate)
        self.params = params
        try:
            self.custom_search_space = get_method(custom_search_space) if custom_search_space else None
        except Exception as error:
            raise SweepConfigError(
                f"hydra.sweeper.custom_search_space={custom_search_space}: {one_line(error)}"
            ) from None
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

    def sweep(self, arguments: list[str]) -> None:
        try:
            plan = self.prepare(arguments)
            failed, ran = self.run_trials(plan)
        except KeyboardInterrupt:
            print(
                "\ninterrupted (Ctrl-C): the running trials are failed and enqueued again; rerun to resume",
                file=sys.stderr,
            )
            raise SystemExit(INTERRUPTED) from None
        self.finish(plan, failed, ran)

    # ------------------------------------------------------------------------------------------------ prepare

    def prepare(self, arguments: list[str]) -> Plan:
        """The search space (checked by composing it), the study and its sampler, before any trial runs."""
        points = self.fixed_trials()
        if points is not None:
            arguments = [*arguments, *fixed_space(points, arguments, self.params)]
        space = parse(self.params, arguments)
        self.check_space(space)
        if not space.distributions and self.custom_search_space is None:
            log.warning("hydra.sweeper.params has nothing to sweep: every trial runs the same config")
        pruner = self.pruner_node()
        self.storage: SweepStorage = open_storage(
            self.storage_cfg, self.sweep_dir, self.heartbeat_interval, self.grace_period, retry_stale
        )
        study = self.open_study(pruner)
        study.sampler = self.make_sampler(space, seed_offset=len(study.trials) + self.register_worker(study))
        if points is None:
            self.probe_sampler(space)
        n_trials = self.n_trials
        if isinstance(study.sampler, optuna.samplers.GridSampler):
            n_trials = min(n_trials, math.prod(len(values) for values in space.grid().values()))
        if points is not None:
            if n_trials != len(points):
                log.info(f"fixed trials: n_trials is their count, {len(points)} (hydra.sweeper.n_trials unused)")
            n_trials = len(points)
            enqueue_fixed(study, points)
        batch_size = self.n_jobs or self.launcher_jobs()
        done = len(finished_trials(study.get_trials(deepcopy=False)))
        log.info(
            f"{done} of {n_trials} trials finished; this process runs up to {batch_size} at once; "
            f"sweep dir {self.sweep_dir}"
        )
        return Plan(
            space=space,
            study=study,
            n_trials=n_trials,
            batch_size=batch_size,
            fixed=None if points is None else {point_key(point) for point in points},
            spec_pruner=pruner,
            report_to_jobs=len(self.directions) == 1,
        )

    def fixed_trials(self) -> list[dict[str, Any]] | None:
        """The design's points, as the seam hands them over (None without a design)."""
        if self.design_cfg is None:
            return None
        try:
            fixed = design_trials(_container(self.design_cfg), int(self.config.get("seed", 0) or 0), self.sweep_dir)
        except ValueError as error:
            raise SweepConfigError(f"hydra.sweeper.design: {error}") from None
        log.info("design: " + "; ".join(fixed.notes))
        return fixed.params

    def check_space(self, space: SearchSpace) -> None:
        """Names, then values: compose a job config with every choice and both ends of every range."""
        check_names(space, self.config)
        for overrides in space.probe_overrides():
            try:
                self.hydra_context.config_loader.load_sweep_config(self.config, overrides)
            except Exception as error:
                raise SweepConfigError(
                    f"sweep parameters: a job config does not compose ({one_line(error)}); no trial was run"
                ) from None

    def pruner_node(self) -> dict | None:
        """The pruner's ``_target_`` node, checked by making it (None: no pruning, as for several objectives)."""
        node = _container(self.pruner_cfg)
        if node is not None and len(self.directions) > 1:
            log.info("pruning is off: Optuna prunes single-objective studies only")
            return None
        try:
            make_pruner(node, self.directions[0] == StudyDirection.MAXIMIZE)
        except Exception as error:
            raise SweepConfigError(f"hydra.sweeper.pruner: {one_line(error)}") from None
        return node

    def open_study(self, pruner: dict | None) -> optuna.Study:
        study_name = self.study_name or str(self.config.hydra.job.name)
        study = optuna.create_study(
            storage=self.storage.storage,
            study_name=study_name,
            directions=self.directions,
            pruner=make_pruner(pruner, self.directions[0] == StudyDirection.MAXIMIZE),
            load_if_exists=True,
        )
        if study.directions != self.directions:
            found = [d.name.lower() for d in study.directions]
            wanted = [d.name.lower() for d in self.directions]
            raise SweepConfigError(
                f"study '{study_name}' in {self.storage.label} was created to {found}, this sweep would {wanted}: "
                "use another hydra.sweeper.study_name or storage"
            )
        if self.metric_names is not None:
            study.set_metric_names(self.metric_names)
        return study

    def register_worker(self, study: optuna.Study) -> int:
        """This process's place among the sweep processes that opened the study (see "Seeds")."""
        storage = self.storage.storage
        study_id = storage.get_study_id_from_name(study.study_name)
        me = WORKER_ATTR + worker_id()
        storage.set_study_system_attr(study_id, me, time.time())
        workers = {k: v for k, v in storage.get_study_system_attrs(study_id).items() if k.startswith(WORKER_ATTR)}
        return sorted(workers, key=lambda key: (workers[key], key)).index(me)

    def make_sampler(self, space: SearchSpace, seed_offset: int) -> optuna.samplers.BaseSampler:
        """The configured sampler, its fixed seed shifted by ``seed_offset`` (see "Seeds")."""
        cfg = dict(_container(self.sampler_cfg) or {})
        cfg.pop("_partial_", None)
        target = str(cfg.get("_target_", ""))
        if cfg.get("seed") is not None and seed_offset:
            cfg["seed"] = int(cfg["seed"]) + seed_offset
        if target.rsplit(".", 1)[-1] == "GridSampler":
            cfg["search_space"] = space.grid()
        if not target:
            return optuna.samplers.TPESampler(seed=cfg.get("seed"))
        try:
            return instantiate(cfg)
        except Exception as error:
            raise SweepConfigError(f"hydra.sweeper.sampler: {target} cannot be made: {one_line(error)}") from None

    def probe_sampler(self, space: SearchSpace) -> None:
        """Run a fresh copy of the sampler on a throwaway in-memory study over the search space: a sampler whose
        optional dependency is missing (CMA-ES without ``cmaes``) fails here, not at the sweep's second trial."""
        sampler = self.make_sampler(space, seed_offset=0)
        rng = random.Random(0)
        verbosity = optuna.logging.get_verbosity()
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                probe = optuna.create_study(sampler=sampler, directions=self.directions)
                for _ in range(PROBE_TRIALS):  # ask and tell: a sampler's error comes straight here, unlogged
                    trial = probe.ask()
                    for name, dist in space.distributions.items():
                        _suggest(trial, name, dist)
                    tell(probe, trial, TrialState.COMPLETE, [rng.random() for _ in self.directions])
        except Exception as error:
            raise SweepConfigError(
                f"hydra.sweeper.sampler: {type(sampler).__name__} cannot sample this search space: {one_line(error)}"
            ) from None
        finally:
            optuna.logging.set_verbosity(verbosity)

    def launcher_jobs(self) -> int:
        """How many jobs the launcher runs at once: its ``n_jobs`` (a negative one read as joblib reads it), or 1."""
        n_jobs = getattr(self.launcher, "n_jobs", None) or OmegaConf.select(self.config, "hydra.launcher.n_jobs")
        if n_jobs is None:
            return 1
        return int(n_jobs) if int(n_jobs) > 0 else max(1, (os.cpu_count() or 1) + 1 + int(n_jobs))

    # ------------------------------------------------------------------------------------------------ trials

    def run_trials(self, plan: Plan) -> tuple[int, int]:
        """Batches of trials until the study's slots are taken; returns (failed, ran) for this process."""
        failed = ran = 0
        while trials := self.next_batch(plan):
            states = self.run_batch(plan, trials)
            failed += states.count(TrialState.FAIL)
            ran += len(states)
            if failed > self.max_failure_rate * max(ran, JUDGED_OVER):
                self.write_artifacts(plan)
                raise SweepFailed(
                    f"{failed} of {ran} trials failed, more than max_failure_rate={self.max_failure_rate}: "
                    f"sweep stopped (reasons in {self.sweep_dir / _artifacts.TRIALS})"
                )
        return failed, ran

    def next_batch(self, plan: Plan) -> list[Trial]:
        """Up to ``batch_size`` claimed trials; waits while other processes' trials run (one of them may die and be
        retried here); [] once the study is done."""
        waiting_logged = False
        while True:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                fail_stale_trials(plan.study)
            trials: list[Trial] = []
            fixed = plan.fixed is not None
            while len(trials) < plan.batch_size and (
                trial := claim(plan.study, self.storage.storage, plan.n_trials, fixed)
            ):
                trials.append(trial)
            if trials:
                return trials
            running = plan.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            if not running:
                return []
            interval = self.storage.heartbeat_interval
            if interval is None:
                log.warning(f"{len(running)} trial(s) still RUNNING elsewhere; no heartbeats to wait on: done")
                return []
            if not waiting_logged:
                log.info(f"waiting for trial(s) {[t.number for t in running]}, running in other processes")
                waiting_logged = True
            time.sleep(min(interval, 2))  # a query for RUNNING trials: cheap, and the sweep ends soon after

    def run_batch(self, plan: Plan, trials: list[Trial]) -> list[TrialState]:
        """Configure and launch one batch, then tell the study each trial's outcome."""
        try:
            overrides = [self.configure_trial(plan, trial) for trial in trials]
        except SweepConfigError as error:
            self.fail_all(plan.study, trials, str(error))
            raise
        except Exception as error:  # the sampler or custom_search_space: a configuration error, not the trials'
            self.fail_all(plan.study, trials, f"not configured: {one_line(error)}")
            raise SweepConfigError(
                f"trial {trials[0].number} could not be configured (hydra.sweeper.sampler or custom_search_space): "
                f"{type(error).__name__}: {one_line(error)}"
            ) from None
        try:
            returns = self.launch(plan, trials, overrides)
        except KeyboardInterrupt:
            for trial in trials:
                trial.set_user_attr("reason", "interrupted: the sweep was stopped (Ctrl-C)")
                tell(plan.study, trial, TrialState.FAIL)
                retry(plan.study, plan.study._storage.get_trial(trial._trial_id), "the sweep was stopped (Ctrl-C)")
            raise
        except Exception as error:  # the launcher could not run the jobs: fail their trials, go on
            log.warning(f"trial(s) {[t.number for t in trials]} could not be launched: {error}")
            self.fail_all(plan.study, trials, f"not launched: {error}", type(error).__name__)
            return [TrialState.FAIL] * len(trials)
        return [self.record(plan, trial, ret) for trial, ret in zip(trials, returns, strict=True)]

    def configure_trial(self, plan: Plan, trial: Trial) -> list[str]:
        """The trial's suggestions (the sampler's, or its fixed parameters) as job overrides."""
        for name, dist in plan.space.distributions.items():
            _suggest(trial, name, dist)
        if self.custom_search_space is not None:
            self.custom_search_space(self.config, trial)
        if plan.fixed is not None and point_key(trial.params) not in plan.fixed:
            raise SweepConfigError(f"trial {trial.number}: not one of the fixed trials (the sampler was asked)")
        trial.set_user_attr("worker", worker_id())
        overrides = plan.space.trial_overrides(trial.params)
        trial.set_user_attr("overrides", overrides)
        return overrides

    def launch(self, plan: Plan, trials: list[Trial], overrides: list[list[str]]) -> list[JobReturn]:
        """Run the trials' jobs as one launcher batch, beating for them; the job dir is the trial number, and each
        job's config carries its trial (``hydra.`` overrides, which no launcher prints)."""
        jobs = []
        for trial, lines in zip(trials, overrides, strict=True):
            extra = [f"hydra.sweep.subdir={trial.number}"]
            if plan.report_to_jobs:
                spec = TrialSpec(
                    storage=self.storage.spec,
                    study_name=plan.study.study_name,
                    trial_id=trial._trial_id,
                    pruner=plan.spec_pruner,
                    maximize=self.directions[0] == StudyDirection.MAXIMIZE,
                )
                extra.append(spec.override())
            jobs.append([*lines, *extra])
        with Heartbeats(self.storage.storage, [trial._trial_id for trial in trials]):
            return list(self.launcher.launch(jobs, initial_job_idx=trials[0].number))

    def record(self, plan: Plan, trial: Trial, ret: JobReturn) -> TrialState:
        outcome = job_outcome(ret, len(self.directions))
        for key, value in outcome.attrs.items():
            trial.set_user_attr(key, value)
        tell(plan.study, trial, outcome.state, outcome.values)
        if outcome.state != TrialState.COMPLETE:
            log.warning(f"trial {trial.number} {outcome.state.name}: {outcome.reason}")
        return outcome.state

    @staticmethod
    def fail_all(study: optuna.Study, trials: list[Trial], reason: str, error_type: str | None = None) -> None:
        for trial in trials:
            trial.set_user_attr("reason", reason)
            if error_type:
                trial.set_user_attr("error_type", error_type)
            tell(study, trial, TrialState.FAIL)

    # ------------------------------------------------------------------------------------------------ finish

    def write_artifacts(self, plan: Plan) -> dict[str, Any]:
        return _artifacts.write_all(plan.study, self.sweep_dir, plan.space, self.config, self.storage.label)

    def finish(self, plan: Plan, failed: int, ran: int) -> None:
        """The sweep dir's files and the log's summary; a sweep whose trials all failed exits non-zero."""
        results = self.write_artifacts(plan)
        if "solutions" in results:
            log.info(f"Pareto front: {len(results['solutions'])} trial(s), in {self.sweep_dir / _artifacts.PARETO}")
        elif results["best_trial"] is not None:
            log.info(f"Best trial {results['best_trial']}: value {results['best_value']}, {results['best_params']}")
        if results.get("rerun"):
            log.info(f"Rerun it: {results['rerun']}")
        log.info(f"Sweep artifacts in {self.sweep_dir}: {_artifacts.RESULTS}, {_artifacts.TRIALS}, plots")
        finished = finished_trials(plan.study.get_trials(deepcopy=False))
        study_failed = bool(finished) and all(t.state == TrialState.FAIL for t in finished)  # a resumed one, too
        if (ran and failed == ran) or study_failed:
            reasons = sorted(str(t.user_attrs.get("reason")) for t in finished if t.state == TrialState.FAIL)
            example = f"e.g. {reasons[0]}; " if reasons else ""
            raise SweepFailed(
                f"all {len(finished) if study_failed else ran} trials failed ({example}reasons in "
                f"{self.sweep_dir / _artifacts.TRIALS})"
            )
