"""The sweeper's config schema, registered in Hydra's ConfigStore as ``hydra/sweeper=sftlab_optuna``.

The keys are those of the official ``hydra-optuna-sweeper`` (``sampler``, ``direction``, ``storage``, ``study_name``,
``n_trials``, ``n_jobs``, ``max_failure_rate``, ``params``, ``custom_search_space``), so a config written for it works
here after ``hydra/sweeper=optuna`` becomes ``hydra/sweeper=sftlab_optuna``; the sampler presets are its own (tpe,
random, cmaes, nsgaii, gp, qmc, grid). ``pruner``, ``metric_names``, ``design`` and the heartbeat are new; where a
shared key means something else on purpose (``n_trials``, ``n_jobs``, ``max_failure_rate``), the README's table says
so. Samplers and pruners are ``_target_`` nodes (groups ``hydra/sweeper/sampler`` and ``hydra/sweeper/pruner``) that
the sweeper instantiates itself, so it can shift a seeded sampler's seed when it resumes or shares a study.

Also registers the OmegaConf resolver ``${objective_direction:<objective>}``: ``minimize`` for a loss or a cost,
``maximize`` for a translation score, a list of them for a list of objectives (``sftlab.objectives.direction``).

No ``from __future__ import annotations`` here: Hydra's plugin scan runs this module before it is in
``sys.modules``, where ``dataclass`` cannot resolve string annotations.
"""

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf

PROVIDER = "sftlab_optuna_sweeper"


@dataclass
class SamplerConfig:
    _target_: str = MISSING
    seed: int | None = None


@dataclass
class TPESamplerConfig(SamplerConfig):
    """https://optuna.readthedocs.io/en/stable/reference/samplers/generated/optuna.samplers.TPESampler.html"""

    _target_: str = "optuna.samplers.TPESampler"
    # null keeps Optuna's default (several of these are deprecated in Optuna 4 and 5).
    consider_prior: bool | None = None
    prior_weight: float | None = None
    consider_magic_clip: bool | None = None
    consider_endpoints: bool | None = None
    n_startup_trials: int = 10
    n_ei_candidates: int = 24
    multivariate: bool | None = None
    group: bool = False
    warn_independent_sampling: bool | None = None
    constant_liar: bool = True


@dataclass
class RandomSamplerConfig(SamplerConfig):
    _target_: str = "optuna.samplers.RandomSampler"


@dataclass
class CmaEsSamplerConfig(SamplerConfig):
    _target_: str = "optuna.samplers.CmaEsSampler"
    x0: dict[str, Any] | None = None
    sigma0: float | None = None
    n_startup_trials: int = 1
    warn_independent_sampling: bool = True
    consider_pruned_trials: bool = False
    popsize: int | None = None
    use_separable_cma: bool = False
    with_margin: bool = False
    lr_adapt: bool = False


@dataclass
class NSGAIISamplerConfig(SamplerConfig):
    """Multi-objective genetic search:
    https://optuna.readthedocs.io/en/stable/reference/samplers/generated/optuna.samplers.NSGAIISampler.html"""

    _target_: str = "optuna.samplers.NSGAIISampler"
    population_size: int = 50
    mutation_prob: float | None = None
    crossover_prob: float = 0.9
    swapping_prob: float = 0.5


@dataclass
class GPSamplerConfig(SamplerConfig):
    """Gaussian-process Bayesian optimisation (needs torch and scipy); one objective or several;
    https://optuna.readthedocs.io/en/stable/reference/samplers/generated/optuna.samplers.GPSampler.html"""

    _target_: str = "optuna.samplers.GPSampler"
    n_startup_trials: int = 10
    deterministic_objective: bool = False
    warn_independent_sampling: bool = True


@dataclass
class QMCSamplerConfig(SamplerConfig):
    _target_: str = "optuna.samplers.QMCSampler"
    qmc_type: str = "sobol"
    scramble: bool = False


@dataclass
class GridSamplerConfig(SamplerConfig):
    """Every combination of the (discrete) search space; ``n_trials`` is capped at the grid's size."""

    _target_: str = "optuna.samplers.GridSampler"


@dataclass
class MedianPrunerConfig:
    _target_: str = "optuna.pruners.MedianPruner"
    n_startup_trials: int = 5
    n_warmup_steps: int = 0
    interval_steps: int = 1
    n_min_trials: int = 1


@dataclass
class SuccessiveHalvingPrunerConfig:
    _target_: str = "optuna.pruners.SuccessiveHalvingPruner"
    min_resource: Any = "auto"  # "auto" or an int
    reduction_factor: int = 4
    min_early_stopping_rate: int = 0
    bootstrap_count: int = 0


@dataclass
class HyperbandPrunerConfig:
    """Only with a minimised objective (``eval.objective=eval_loss``): see the sweeper's pruning notes."""

    _target_: str = "optuna.pruners.HyperbandPruner"
    min_resource: int = 1
    max_resource: Any = "auto"  # "auto" or an int
    reduction_factor: int = 3
    bootstrap_count: int = 0


@dataclass
class ThresholdPrunerConfig:
    _target_: str = "optuna.pruners.ThresholdPruner"
    lower: float | None = None
    upper: float | None = None
    n_warmup_steps: int = 0
    interval_steps: int = 1


@dataclass
class SftlabOptunaSweeperConf:
    _target_: str = "hydra_plugins.sftlab_optuna_sweeper.sweeper.SftlabOptunaSweeper"
    # The sweeper instantiates sampler, pruner and storage itself (see the module docstring).
    _recursive_: bool = False
    # _self_ first, so the groups fill sampler and pruner (a null pruner here would win otherwise).
    defaults: list[Any] = field(default_factory=lambda: ["_self_", {"sampler": "tpe"}, {"pruner": "median"}])

    # A `_target_` node; see the hydra/sweeper/sampler group (tpe, random, cmaes, nsgaii, gp, qmc, grid). A fixed
    # seed gives the same trials on any fresh storage; a resumed study shifts it by its trial count, and each further
    # sweep process that opens the study by one more (best effort: see _impl's "Seeds").
    sampler: Any = MISSING
    # minimize | maximize, or a list of them for a multi-objective study (the task then returns one value for each);
    # ${objective_direction:${eval.objective}} follows the run's objective(s).
    direction: Any = "minimize"
    # The objectives' names (a name or a list, one per direction), stored with study.set_metric_names: what
    # optuna-dashboard and the sweep's files call them. null: unnamed ("Objective 0").
    metric_names: Any = None
    # null: sqlite:///<hydra.sweep.dir>/optuna.db. Else a SQLAlchemy URL (anything with ://, e.g.
    # postgresql+psycopg://user:pass@host/db), journal:<path> (or a path) for an Optuna journal file on a shared
    # filesystem, or a `_target_` node of an Optuna storage. Rerunning with the same storage and study_name resumes
    # the study; other sweep processes given the same storage and study_name share it.
    storage: Any = None
    # null: the Hydra job name (`train` for sftlab.train).
    study_name: str | None = None
    # Finished trials (complete, pruned or failed) the study should hold, all its sweep processes together; a
    # resumed sweep runs only the rest.
    n_trials: int = 20
    # Trials this process asks at once and hands the launcher as one batch; null: the launcher's n_jobs (one per
    # GPU with hydra/launcher=gpus), or 1. Hydra's basic launcher runs one job at a time whatever this says.
    n_jobs: int | None = None
    # Stop the sweep, exiting non-zero, once more than this fraction of the trials this process ran failed, counted
    # over at least 4 trials (so at 0.5 one early failure does not stop it, two of the first four do; 0.0 stops at
    # the first failure). Pruned trials are not failures. Whatever the rate, a sweep whose trials all failed exits
    # non-zero.
    max_failure_rate: float = 0.5
    # name -> override value: choice(...), range(...), interval(...), tag(log, interval(...)), or a fixed value.
    params: dict[str, Any] | None = None
    # A function `fn(cfg, trial)` (dotted path) that adds parameters of its own to each trial.
    custom_search_space: str | None = None
    # A `_target_` node of an Optuna pruner (hydra/sweeper/pruner: median, successive_halving, hyperband,
    # threshold); null switches pruning off. Jobs report to the storage, so it works with any launcher whose jobs
    # can reach the storage.
    pruner: Any = None
    # A factorial design run as fixed trials (conf/design/*.yaml): `type` (full | fractional | taguchi),
    # `factors` (names under `prefix`, default prompt.components), `array` (L4 | L8 | L12 | L16), `generators` or
    # `resolution` (fractional), `seeds` (every row is crossed with each; default [${seed}]). Every design point is
    # enqueued once; n_trials becomes rows x seeds and the sampler is never asked for a point of its own.
    design: Any = None
    # Seconds between heartbeats of each running trial (Optuna's heartbeat; null: off). A RUNNING trial without a
    # beat for grace_period seconds (null: twice the interval) lost its process and is failed, then retried once.
    heartbeat_interval: int | None = 30
    grace_period: int | None = None
    # Set by the sweeper in each job's config (sftlab.sweep.trial.TrialSpec, JSON): the job's Optuna trial. Not a
    # setting; null in the sweep's own config.
    trial: str | None = None


def _objective_direction(objective: Any) -> Any:
    from sftlab.sweep import objective_direction

    return objective_direction(objective if OmegaConf.is_list(objective) else str(objective))


def register() -> None:
    store = ConfigStore.instance()
    store.store(group="hydra/sweeper", name="sftlab_optuna", node=SftlabOptunaSweeperConf, provider=PROVIDER)
    samplers = {
        "tpe": TPESamplerConfig,
        "random": RandomSamplerConfig,
        "cmaes": CmaEsSamplerConfig,
        "nsgaii": NSGAIISamplerConfig,
        "gp": GPSamplerConfig,
        "qmc": QMCSamplerConfig,
        "grid": GridSamplerConfig,
    }
    for name, node in samplers.items():
        store.store(group="hydra/sweeper/sampler", name=name, node=node, provider=PROVIDER)
    pruners = {
        "median": MedianPrunerConfig,
        "successive_halving": SuccessiveHalvingPrunerConfig,
        "hyperband": HyperbandPrunerConfig,
        "threshold": ThresholdPrunerConfig,
    }
    for name, node in pruners.items():
        store.store(group="hydra/sweeper/pruner", name=name, node=node, provider=PROVIDER)
    if not OmegaConf.has_resolver("objective_direction"):
        OmegaConf.register_new_resolver("objective_direction", _objective_direction)


register()
