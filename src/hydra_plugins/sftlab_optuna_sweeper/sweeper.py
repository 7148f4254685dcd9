"""The Hydra ``Sweeper`` plugin class; Optuna is imported only when a sweep starts (``_impl``)."""

from __future__ import annotations

from typing import Any

from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class SftlabOptunaSweeper(Sweeper):
    """Hydra sweeper backed by a persistent Optuna study (see ``config.SftlabOptunaSweeperConf``)."""

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
        trial: str | None = None,  # set in jobs' configs only (sftlab.sweep.trial); null here
    ) -> None:
        from ._impl import OptunaSweep

        self.sweep_impl = OptunaSweep(
            sampler=sampler,
            direction=direction,
            storage=storage,
            study_name=study_name,
            n_trials=n_trials,
            n_jobs=n_jobs,
            max_failure_rate=max_failure_rate,
            params=params,
            custom_search_space=custom_search_space,
            pruner=pruner,
            metric_names=metric_names,
            design=design,
            heartbeat_interval=heartbeat_interval,
            grace_period=grace_period,
        )

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.sweep_impl.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> None:
        self.sweep_impl.sweep(arguments)
