"""``hydra/launcher=gpus``: the sweep's jobs in parallel on one host, each GPU with a worker process of its own.

Hydra's joblib launcher runs a batch of jobs in a pool of worker processes but knows nothing of GPUs, and its pool
hands any job to any worker. Here each entry of ``gpus`` gets one long-lived worker (joblib's loky
``ProcessPoolExecutor`` with one process), started with ``CUDA_VISIBLE_DEVICES`` set to that GPU before anything in it
can open CUDA; the batch's i-th job goes to worker ``i % len(gpus)``, through the joblib launcher's own
``execute_job``. A worker outlives its job, so like the basic launcher's single process it keeps the base model loaded
between trials (``sftlab.models.load_base``); a sweep pays the imports and the first load once per GPU.

With ``share_cpus`` (the default) each worker also gets an equal, disjoint share of this process's CPUs: its
affinity, and ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS`` to match, as ``torchrun`` limits its ranks' threads. Without it
each worker's thread pools (torch's, the tokenizers', the compiler's) size themselves to the whole host, and one
trial's CPU-heavy phases (tokenizing, compiling, setting up its trainer) can preempt the thread that launches the other
trial's kernels. (On a 2 x H100 host with 32 CPUs, a sweep of 8B trials ran as fast either way: docs/benchmarks.md.)

``n_jobs`` is the number of workers, one per entry of ``gpus``: the Optuna sweeper asks that many trials at once
(its ``n_jobs: null``). A GPU listed twice gets two workers (``hydra.launcher.gpus=[0,0,1,1]``: small models). With
``gpus: null`` the launcher takes the GPUs this process may use: ``CUDA_VISIBLE_DEVICES`` if set, else those
``nvidia-smi`` lists. A job that fails on one GPU fails its own trial; a worker that dies (killed, a crash in CUDA)
fails its job only and is replaced, and the other jobs of the batch run on.
"""

import atexit
import logging
import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, configure_log, filter_overrides, setup_globals
from hydra.errors import HydraException
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

from hydra_plugins.sftlab_gpu_launcher._died import died_return

log = logging.getLogger(__name__)


def visible_gpus() -> list[str]:
    """The GPUs this process may hand out: ``CUDA_VISIBLE_DEVICES``'s entries, else ``nvidia-smi``'s indices."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [gpu.strip() for gpu in visible.split(",") if gpu.strip()]
    if shutil.which("nvidia-smi") is None:
        return []
    listed = subprocess.run(
        ["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"], capture_output=True, text=True, check=False
    )
    return [line.strip() for line in listed.stdout.splitlines() if line.strip()] if listed.returncode == 0 else []


def cpu_shares(count: int) -> list[list[int]]:
    """``count`` equal, disjoint runs of the CPUs this process may use (shared round-robin when there are fewer)."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < count:
        return [[cpus[index % len(cpus)]] for index in range(count)]
    size = len(cpus) // count
    return [cpus[index * size : (index + 1) * size] for index in range(count)]


def slot_of(job_index: int, gpus: Sequence[str]) -> int:
    """The worker (and so the GPU) of the batch's ``job_index``-th job."""
    return job_index % len(gpus)


class GpuLauncher(Launcher):
    def __init__(self, gpus: Sequence[Any] | None = None, n_jobs: int | None = None, share_cpus: bool = True) -> None:
        self.gpus = [str(gpu) for gpu in gpus] if gpus is not None else visible_gpus()
        if not self.gpus:
            raise HydraException(
                "hydra/launcher=gpus: no GPU found (CUDA_VISIBLE_DEVICES is empty and nvidia-smi lists none); "
                "name them with hydra.launcher.gpus=[0,1], or use hydra/launcher=joblib"
            )
        if n_jobs is not None and n_jobs != len(self.gpus):
            raise HydraException(
                f"hydra/launcher=gpus: n_jobs={n_jobs}, but there is one worker per GPU ({len(self.gpus)}: "
                f"{self.gpus}); list the GPUs in hydra.launcher.gpus instead (one twice runs two jobs on it)"
            )
        # Linux only: elsewhere there is no affinity to set, and the workers share the host as they find it.
        self.cpus = cpu_shares(len(self.gpus)) if share_cpus and hasattr(os, "sched_setaffinity") else None
        self.workers: list[Any] = [None] * len(self.gpus)
        self.config: DictConfig | None = None
        self.task_function: TaskFunction | None = None
        self.hydra_context: HydraContext | None = None
        atexit.register(self.close)

    @property
    def n_jobs(self) -> int:
        """Jobs run at once: the batch size the Optuna sweeper asks for when its own ``n_jobs`` is null."""
        return len(self.gpus)

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.task_function = task_function

    def worker(self, slot: int) -> Any:
        """The slot's worker process, started on first use or after it died."""
        from joblib.externals.loky import ProcessPoolExecutor

        worker = self.workers[slot]
        if worker is None or worker._flags.broken or worker._flags.shutdown:
            env = {"CUDA_VISIBLE_DEVICES": self.gpus[slot]}
            placement: dict[str, Any] = {}
            if self.cpus is not None:
                share = self.cpus[slot]
                env |= {"OMP_NUM_THREADS": str(len(share)), "MKL_NUM_THREADS": str(len(share))}
                placement = {"initializer": os.sched_setaffinity, "initargs": (0, share)}
            worker = ProcessPoolExecutor(max_workers=1, env=env, **placement)
            self.workers[slot] = worker
        return worker

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from hydra_plugins.hydra_joblib_launcher._core import execute_job

        assert self.config is not None and self.hydra_context is not None and self.task_function is not None
        setup_globals()
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        shares = "" if self.cpus is None else f" and {len(self.cpus[0])} CPU(s)"
        log.info(f"Launching {len(job_overrides)} jobs on GPUs {self.gpus}, one worker process each{shares}")
        singleton_state = Singleton.get_state()
        futures = []
        for index, overrides in enumerate(job_overrides):
            slot = slot_of(index, self.gpus)
            log.info(f"\t#{index} on GPU {self.gpus[slot]}: {' '.join(filter_overrides(overrides))}")
            futures.append(
                self.worker(slot).submit(
                    execute_job,
                    initial_job_idx + index,
                    overrides,
                    self.hydra_context,
                    self.config,
                    self.task_function,
                    singleton_state,
                )
            )
        returns = []
        for index, future in enumerate(futures):
            try:
                returns.append(future.result())
            except Exception as error:  # the worker died: this job failed, the slot gets a new worker next time
                gpu = self.gpus[slot_of(index, self.gpus)]
                lines = str(error).splitlines()
                codes = next((line for line in lines if line.startswith("The exit codes")), lines[0] if lines else "")
                reason = f"its worker process on GPU {gpu} died: {type(error).__name__}. {codes}".strip()
                returns.append(died_return(index, reason))
        return returns

    def close(self) -> None:
        for worker in self.workers:
            if worker is not None:
                worker.shutdown(wait=True)
        self.workers = [None] * len(self.gpus)


@dataclass
class GpuLauncherConf:
    _target_: str = "hydra_plugins.sftlab_gpu_launcher.gpu_launcher.GpuLauncher"
    # CUDA_VISIBLE_DEVICES values (indices or UUIDs), one worker process each; null: all visible GPUs.
    gpus: Any = None
    # Jobs at once: one per entry of gpus (null). Listed for the sweeper and the joblib launcher's users.
    n_jobs: Any = None
    # Each worker runs on its own equal share of the CPUs, its thread pools sized to it (Linux).
    share_cpus: bool = True


ConfigStore.instance().store(group="hydra/launcher", name="gpus", node=GpuLauncherConf, provider="sftlab_gpu_launcher")
