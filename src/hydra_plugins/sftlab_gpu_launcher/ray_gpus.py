"""``hydra/launcher=ray_gpus``: the sweep's trials as Ray tasks of one GPU each, on a Ray cluster or a local Ray.

Built on hydra-ray-launcher (the ``ray`` extra): its config (``ray.init`` for ``ray.init()``, ``ray.remote`` for the
task's options) and its ``launch_job_on_ray``, which runs one Hydra job as a Ray task. Its own ``RayLauncher`` is not
used as it stands, for three reasons, measured with Ray 2.60 and hydra-ray-launcher 1.2.2:

- It always passes ``object_store_memory`` to ``ray.init()``, which Ray refuses when joining a running cluster
  (``address: auto``, the multi-node case): every trial failed with "When connecting to an existing cluster,
  object_store_memory must not be provided". Here that setting is given only to a Ray started for the sweep.
- It gathers a batch with one ``ray.get`` after another, so a task whose worker process died (the OOM killer, a crash
  in CUDA) raised out of the whole batch and the sweeper failed every trial of it, the running ones too. Here such a
  task fails its own trial, and the other tasks of the batch run on and are told as they end.
- It has no ``n_jobs``, so the Optuna sweeper asked one trial at a time unless told otherwise. Here ``n_jobs`` is the
  cluster's GPUs over the GPUs a task takes (one trial per GPU), read when the sweep starts; ``hydra.sweeper.n_jobs``
  still overrides it.

Ray sets each task's ``CUDA_VISIBLE_DEVICES`` and, for a GPU task, starts a fresh worker process (Ray's ``max_calls`` is
1 for GPU tasks), so on Ray every trial pays the imports and the base model's load, about a minute for an 8B model
(docs/benchmarks.md), where ``hydra/launcher=gpus`` pays them once per GPU. That is as it should be: CUDA reads
``CUDA_VISIBLE_DEVICES`` once per process, and Ray may give a reused worker another GPU.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, configure_log, filter_overrides, setup_globals
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict

from hydra_plugins.sftlab_gpu_launcher._died import died_return, first_line

log = logging.getLogger(__name__)

# What hydra-ray-launcher gives a Ray it starts itself (75 MiB: the jobs' configs are small), as small CI machines
# and containers with a small /dev/shm need.
LOCAL_OBJECT_STORE_BYTES = 75 * 1024 * 1024


def init_options(init: dict[str, Any]) -> dict[str, Any]:
    """``ray.init()``'s keyword arguments: a Ray started for the sweep gets a small object store, a cluster joined
    (an ``address``) keeps its own."""
    options = {key: value for key, value in init.items() if value is not None}
    if "address" not in options:
        options.setdefault("object_store_memory", LOCAL_OBJECT_STORE_BYTES)
    return options


def trials_at_once(cluster: dict[str, float], remote: dict[str, Any]) -> int:
    """How many tasks of ``remote``'s size the cluster runs at once: by GPUs for a GPU task, else by CPUs."""
    gpus_per_task = float(remote.get("num_gpus") or 0)
    if gpus_per_task > 0:
        return max(1, int(cluster.get("GPU", 0) // gpus_per_task))
    return max(1, int(cluster.get("CPU", 1) // float(remote.get("num_cpus") or 1)))


class RayGpuLauncher(Launcher):
    def __init__(self, ray: DictConfig) -> None:
        self.ray_cfg = ray
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.task_function: TaskFunction | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.task_function = task_function

    def remote_options(self) -> dict[str, Any]:
        return OmegaConf.to_container(self.ray_cfg.remote, resolve=True) if self.ray_cfg.remote else {}

    def start_ray(self) -> None:
        import ray

        if not ray.is_initialized():
            options = init_options(OmegaConf.to_container(self.ray_cfg.init, resolve=True) or {})
            log.info(f"Starting Ray: ray.init({', '.join(f'{key}={value!r}' for key, value in options.items())})")
            ray.init(**options)

    @property
    def n_jobs(self) -> int:
        """One trial per GPU of the Ray cluster (per ``ray.remote.num_gpus`` GPUs), as the sweep starts."""
        import ray

        self.start_ray()
        cluster = ray.cluster_resources()
        remote = self.remote_options()
        if float(remote.get("num_gpus") or 0) > 0 and not cluster.get("GPU"):
            log.warning("the Ray cluster has no GPU now: each trial waits until a node with one joins")
        return trials_at_once(cluster, remote)

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        import ray
        from hydra_plugins.hydra_ray_launcher._launcher_util import launch_job_on_ray

        assert self.config is not None and self.hydra_context is not None and self.task_function is not None
        setup_globals()
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        self.start_ray()
        log.info(f"Launching {len(job_overrides)} jobs as Ray tasks ({self.remote_options()})")
        singleton_state = Singleton.get_state()
        tasks = []
        for number, overrides in enumerate(job_overrides, start=initial_job_idx):
            log.info(f"\t#{number}: {' '.join(filter_overrides(overrides))}")
            sweep_config = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
            with open_dict(sweep_config):
                sweep_config.hydra.job.id = f"ray_job_{number}"
                sweep_config.hydra.job.num = number
            task = launch_job_on_ray(
                self.hydra_context, self.ray_cfg.remote, sweep_config, self.task_function, singleton_state
            )
            tasks.append(task)
        returns = []
        for number, task in enumerate(tasks, start=initial_job_idx):
            try:
                returns.append(ray.get(task))
            except ray.exceptions.RayError as error:  # its worker died: this job failed, the others run on
                reason = f"its Ray task died: {type(error).__name__}. {first_line(error)}".strip()
                returns.append(died_return(number, reason))
        return returns
