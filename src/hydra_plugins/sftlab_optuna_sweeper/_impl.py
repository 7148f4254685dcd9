"""The sweep: a persistent Optuna study asked for parameters, told each job's outcome, resumable after a kill.

Study and storage
    ``storage: null`` keeps the study in ``sqlite:///<hydra.sweep.dir>/optuna.db``; the study is created with
    ``load_if_exists=True``, so rerunning with the same ``hydra.sweep.dir`` (or the same explicit ``storage``) and
    ``study_name`` resumes it. The sweep runs until the study holds ``n_trials`` finished trials (complete, pruned or
    failed), so no finished trial is lost or redone. Each job's run dir is ``<sweep dir>/<trial number>``.

Interrupted trials
    A trial still RUNNING when a sweep starts was left by a sweep process that died (killed, out of memory, a lost
    machine): it is marked FAIL with ``interrupted`` and a ``reason``, does not count towards ``n_trials``, and its
    parameters are enqueued so that the next trial retries them. Ctrl-C marks the running trial the same way. One
    sweep process per study is assumed; a RUNNING trial of a live process on this machine stops the start instead.

Outcomes
    A job that returns a number completes its trial. A job that returns ``None`` (the sftlab entry point does so in a
    multirun after writing ``failure.json``) or raises is FAIL, with the reason in the user attrs ``reason`` and
    ``error_type``; a ``TrialPruned`` failure, or a prune decision seen by the reporter, is PRUNED. The sweep goes on.

Pruning
    Only with Hydra's basic launcher, which runs the jobs in this process one at a time: before each job the sweeper
    sets ``sftlab.trial``'s reporter to the trial, training reports ``eval_loss`` at each evaluation and stops when the
    pruner says so. The reported value is a loss whatever the study's direction: when the study maximises (a
    translation score), the pruner is run against a view of the study that minimises, so it compares losses as
    losses. HyperbandPruner builds its own bracket studies from the storage and cannot take that view: it is refused
    for a maximised objective. Any other launcher runs without pruning (with a warning).

Designs
    With ``design`` (``conf/design/*.yaml``), the study runs a factorial design (``sftlab.design``): each row
    crossed with each seed is one fixed trial, enqueued (``study.enqueue_trial``) unless the study already holds it
    (finished, or waiting), and ``n_trials`` is rows x seeds. A resumed design thus runs only its missing points,
    and an interrupted point is retried once as above. The factors and the seed join the search space as
    ``choice(false, true)`` and ``choice(<seeds>)``, so their names are checked and every level composes before the
    first trial; the sampler is never asked for a point of its own (a trial that is not a design point stops the
    sweep). The design, its aliasing and its points are written to ``<sweep dir>/design.json`` first.
"""

from __future__ import annotations

import logging
import math
import os
import socket
from pathlib import Path
from typing import Any

import optuna
from hydra._internal.core_plugins.basic_launcher import BasicLauncher
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn, JobStatus
from hydra.errors import CompactHydraException
from hydra.types import HydraContext, TaskFunction
from hydra.utils import get_method, instantiate
from omegaconf import DictConfig, OmegaConf
from optuna.distributions import BaseDistribution, CategoricalDistribution, IntDistribution
from optuna.pruners import BasePruner, HyperbandPruner, NopPruner
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, Trial, TrialState

from sftlab import design as design_lib
from sftlab import rundir
from sftlab import trial as trial_contract

from . import _artifacts
from ._search_space import SearchSpace, SweepConfigError, check_names, parse

log = logging.getLogger(__name__)

STORAGE_FILE = "optuna.db"
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


class SweepFailed(CompactHydraException):
    """The sweep stopped: too many failed trials (max_failure_rate)."""


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _alive_elsewhere(worker: str) -> bool:
    """Whether ``host:pid`` is another live process on this machine (then its RUNNING trial is not stale)."""
    host, _, pid = worker.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def counts_towards_n_trials(trial: FrozenTrial) -> bool:
    return trial.state in FINISHED and not trial.user_attrs.get("interrupted")


def _point_key(params: dict[str, Any]) -> tuple:
    """A design point as a hashable key: sorted (name, value) pairs, bools kept apart from ints."""
    return tuple(sorted((str(name), (type(value).__name__, value)) for name, value in params.items()))


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


class TrialReporter:
    """``sftlab.trial``'s reporter for one Optuna trial."""

    def __init__(self, trial: Trial):
        self.trial = trial
        self.pruned = False

    def report(self, step: int, value: float) -> None:
        self.trial.report(value, step)

    def should_prune(self) -> bool:
        self.pruned = self.trial.should_prune()
        return self.pruned


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


def job_outcome(ret: JobReturn, reporter: TrialReporter | None) -> tuple[TrialState, float | None, dict[str, Any]]:
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
        pruned = (reporter is not None and reporter.pruned) or (
            failure is not None and failure.get("type") == trial_contract.TrialPruned.__name__
        )
        if failure is not None:
            attrs.update(reason=failure.get("message"), error_type=failure.get("type"))
        else:
            attrs["reason"] = "pruned" if pruned else "the task returned None"
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
        n_jobs: int,
        max_failure_rate: float,
        params: DictConfig | None,
        custom_search_space: str | None,
        pruner: Any,
        design: Any = None,
    ) -> None:
        if not 0.0 <= max_failure_rate <= 1.0:
            raise SweepConfigError(f"hydra.sweeper.max_failure_rate={max_failure_rate}: expected 0.0 to 1.0")
        if n_jobs < 1:
            raise SweepConfigError(f"hydra.sweeper.n_jobs={n_jobs}: expected at least 1")
        self.sampler_cfg = sampler
        self.direction = _direction(direction)
        self.storage_cfg = storage
        self.study_name = study_name
        self.n_trials = int(n_trials)
        self.n_jobs = int(n_jobs)
        self.max_failure_rate = float(max_failure_rate)
        self.params = params
        self.custom_search_space = get_method(custom_search_space) if custom_search_space else None
        self.pruner_cfg = pruner
        self.design_cfg = design

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

    def make_storage(self) -> tuple[Any, str]:
        spec = self.storage_cfg
        if spec is None:
            self.sweep_dir.mkdir(parents=True, exist_ok=True)
            url = f"sqlite:///{self.sweep_dir / STORAGE_FILE}"
            return url, url
        if OmegaConf.is_dict(spec) or isinstance(spec, dict):
            cfg = _container(spec)
            return instantiate(cfg), str(cfg.get("_target_"))
        spec = str(spec)
        if "://" in spec:
            return spec, spec
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        path = Path(spec).absolute()
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path))), f"journal:{path}"

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

    def make_pruner(self, in_process: bool) -> BasePruner:
        if self.pruner_cfg is None:
            return NopPruner()
        if not in_process:
            log.warning(
                f"pruning is off: the launcher {type(self.launcher).__name__} runs jobs outside the sweeper's "
                "process (pruning needs hydra/launcher=basic)"
            )
            return NopPruner()
        pruner = instantiate(_container(self.pruner_cfg))
        if self.direction == StudyDirection.MINIMIZE:
            return pruner
        if isinstance(pruner, HyperbandPruner):
            raise SweepConfigError(
                "hydra.sweeper.pruner: HyperbandPruner cannot prune on eval_loss while the study maximises; "
                "use hydra/sweeper/pruner=median or successive_halving, or eval.objective=eval_loss"
            )
        return LossPruner(pruner)

    def recover(self, study: optuna.Study) -> None:
        """Fail the trials a dead sweep left RUNNING, and enqueue the parameters of interrupted trials once."""
        for frozen in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            worker = frozen.user_attrs.get("worker")
            if worker and _alive_elsewhere(worker):
                raise SweepConfigError(
                    f"study '{study.study_name}' is in use: trial {frozen.number} is running in process {worker}"
                )
            running = Trial(study, frozen._trial_id)
            running.set_user_attr("interrupted", True)
            running.set_user_attr(
                "reason", f"interrupted: left RUNNING by a sweep process that stopped ({worker or 'unknown worker'})"
            )
            tell(study, frozen.number, TrialState.FAIL)
            log.warning(f"trial {frozen.number} was left RUNNING by a stopped sweep: marked FAIL, to be retried")
        trials = study.get_trials(deepcopy=False)
        retried = {t.user_attrs.get("retry_of") for t in trials}
        for frozen in trials:
            if frozen.user_attrs.get("interrupted") and frozen.number not in retried and frozen.params:
                study.enqueue_trial(dict(frozen.params), user_attrs={"retry_of": frozen.number})
                log.info(f"retrying the parameters of interrupted trial {frozen.number}: {frozen.params}")

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

    def enqueue_design(self, study: optuna.Study, points: list[dict[str, Any]]) -> int:
        """Enqueue the design points the study does not hold yet (finished and counted, or waiting); returns how
        many points are still to run."""
        finished: set[tuple] = set()
        waiting: set[tuple] = set()
        for frozen in study.get_trials(deepcopy=False):
            if counts_towards_n_trials(frozen):
                finished.add(_point_key(frozen.params))
            elif frozen.state == TrialState.WAITING:
                waiting.add(_point_key(frozen.system_attrs.get("fixed_params") or {}))
        todo = 0
        for index, point in enumerate(points):
            key = _point_key(point)
            if key in finished:
                continue
            todo += 1
            if key not in waiting:  # a waiting one (an interrupted point's retry) runs in this sweep as it is
                study.enqueue_trial(point, user_attrs={"design_point": index})
        return todo

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

    def sweep(self, arguments: list[str]) -> None:
        points: list[dict[str, Any]] | None = None
        if self.design_cfg is not None:
            design_lines, points = self.design_space(arguments)
            arguments = [*arguments, *design_lines]
        space = parse(self.params, arguments)
        self.check_space(space)
        if not space.distributions and self.custom_search_space is None:
            log.warning("hydra.sweeper.params has nothing to sweep: every trial runs the same config")

        storage, storage_label = self.make_storage()
        study_name = self.study_name or str(self.config.hydra.job.name)
        in_process = isinstance(self.launcher, BasicLauncher)
        study = optuna.create_study(
            storage=storage,
            study_name=study_name,
            direction=self.direction,
            pruner=self.make_pruner(in_process),
            load_if_exists=True,
        )
        if study.direction != self.direction:
            raise SweepConfigError(
                f"study '{study_name}' in {storage_label} was created to {study.direction.name.lower()}, this sweep "
                f"would {self.direction.name.lower()}: use another hydra.sweeper.study_name or storage"
            )
        study.sampler = self.make_sampler(space, seed_offset=len(study.trials))
        pruner = getattr(study.pruner, "inner", study.pruner)
        log.info(
            f"Optuna study '{study_name}' in {storage_label}: {self.direction.name.lower()}, "
            f"sampler {type(study.sampler).__name__}, pruner {type(pruner).__name__}"
        )
        self.recover(study)
        n_trials = self.n_trials
        if isinstance(study.sampler, optuna.samplers.GridSampler):
            size = math.prod(len(values) for values in space.grid().values())
            n_trials = min(n_trials, size)
        done = sum(counts_towards_n_trials(t) for t in study.get_trials(deepcopy=False))
        remaining = n_trials - done
        design_keys: set[tuple] | None = None
        if points is not None:
            if n_trials != len(points):
                log.info(f"design: n_trials is rows x seeds = {len(points)} (hydra.sweeper.n_trials={n_trials} unused)")
            n_trials = len(points)
            remaining = self.enqueue_design(study, points)
            done = n_trials - remaining
            design_keys = {_point_key(point) for point in points}
        log.info(f"{done} of {n_trials} trials finished, {max(remaining, 0)} to run; sweep dir {self.sweep_dir}")
        if in_process and self.n_jobs > 1:
            log.info(f"n_jobs={self.n_jobs}: the basic launcher runs one job at a time, so trials are asked one by one")

        failed = ran = 0
        while remaining > 0:
            batch = 1 if in_process else min(self.n_jobs, remaining)
            trials = [study.ask() for _ in range(batch)]
            states: list[TrialState] = []
            reporter = TrialReporter(trials[0]) if in_process else None
            try:
                overrides = [self.configure_trial(trial, space) for trial in trials]
                if design_keys is not None:
                    strays = [t.number for t in trials if _point_key(t.params) not in design_keys]
                    if strays:
                        raise SweepConfigError(f"trial(s) {strays}: not a point of the design (the sampler was asked)")
                if reporter is not None:
                    trial_contract.set_reporter(reporter)
                returns = self.launcher.launch(overrides, initial_job_idx=trials[0].number)
            except SweepConfigError:
                for trial in trials:
                    trial.set_user_attr("reason", "not a design point")
                    tell(study, trial, TrialState.FAIL)
                raise
            except KeyboardInterrupt:
                for trial in trials:
                    trial.set_user_attr("interrupted", True)
                    trial.set_user_attr("reason", "interrupted: the sweep was stopped (Ctrl-C)")
                    tell(study, trial, TrialState.FAIL)
                raise
            except Exception as error:  # the launcher could not run the jobs: fail their trials, go on
                log.warning(f"trial(s) {[t.number for t in trials]} could not be launched: {error}")
                for trial in trials:
                    trial.set_user_attr("reason", f"not launched: {error}")
                    trial.set_user_attr("error_type", type(error).__name__)
                    tell(study, trial, TrialState.FAIL)
                    states.append(TrialState.FAIL)
                returns = []
            finally:
                trial_contract.clear_reporter()
            for trial, ret in zip(trials, returns, strict=False):
                state, value, attrs = job_outcome(ret, reporter)
                for key, attr in attrs.items():
                    trial.set_user_attr(key, attr)
                tell(study, trial, state, value)
                states.append(state)
                if state != TrialState.COMPLETE:
                    log.warning(f"trial {trial.number} {state.name}: {attrs.get('reason')}")
            failed += states.count(TrialState.FAIL)
            ran += len(trials)
            remaining -= batch
            if failed / ran > self.max_failure_rate:
                _artifacts.write_all(study, self.sweep_dir, space, self.config, storage_label)
                raise SweepFailed(
                    f"{failed} of {ran} trials failed, more than max_failure_rate={self.max_failure_rate}: "
                    f"sweep stopped (reasons in {self.sweep_dir / _artifacts.TRIALS})"
                )

        results = _artifacts.write_all(study, self.sweep_dir, space, self.config, storage_label)
        if results["best_trial"] is not None:
            log.info(f"Best trial {results['best_trial']}: value {results['best_value']}, {results['best_params']}")
            log.info(f"Rerun it: {results['rerun']}")
        log.info(f"Sweep artifacts in {self.sweep_dir}: {_artifacts.RESULTS}, {_artifacts.TRIALS}, plots")
