"""``hydra/launcher=slurm_gpus``: Hydra's submitit launcher, except that a job which dies fails its own trial only.

Hydra's launcher submits a batch of trials as one SLURM job array and gathers it with one ``job.results()`` after
another; submitit raises there for a job that ended without a result (killed at its time limit or by the OOM killer,
a crash in CUDA), so the exception left the whole batch and the sweeper failed every trial of it, the ones that
finished too. ``launch`` here submits the same way (Hydra's queue parameters, its job body ``__call__``) and turns such
a job into a failed return of its own; the other jobs' results are kept. Written here because the gathering is inside
Hydra's ``launch`` with no hook to change it.

``LocalGpuLauncher`` is the same over submitit's local executor (``hydra/launcher=submitit_local``): the tests use it
to kill a job's process without a SLURM cluster.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, filter_overrides
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import (
    BaseSubmititLauncher,
    LocalLauncher,
    SlurmLauncher,
)
from omegaconf import OmegaConf

from hydra_plugins.sftlab_gpu_launcher._died import died_return, first_line

log = logging.getLogger(__name__)

# Hydra's queue parameters that configure the executor itself rather than each job.
EXECUTOR_KEYS = {"submitit_folder", "max_num_timeout"}


class OneFailurePerJob(BaseSubmititLauncher):
    def executor(self):
        """A submitit executor for ``_EXECUTOR`` with Hydra's queue parameters, named as submitit names them."""
        import submitit

        specific = {}
        if "max_num_timeout" in self.params:  # the executor's, under its cluster's name
            specific[f"{self._EXECUTOR}_max_num_timeout"] = self.params["max_num_timeout"]
        executor = submitit.AutoExecutor(cluster=self._EXECUTOR, folder=self.params["submitit_folder"], **specific)
        shared = set(OmegaConf.structured(BaseQueueConf).keys())
        executor.update_parameters(
            **{
                key if key in shared else f"{self._EXECUTOR}_{key}": value
                for key, value in self.params.items()
                if key not in EXECUTOR_KEYS
            }
        )
        return executor

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from submitit.core.utils import FailedJobError, UncompletedJobError

        assert self.config is not None
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        if "mode" in self.config.hydra.sweep:
            os.chmod(sweep_dir, mode=int(str(self.config.hydra.sweep.mode), 8))
        log.info(f"Submitit '{self._EXECUTOR}': {len(job_overrides)} jobs, sweep output dir {sweep_dir}")
        numbers = range(initial_job_idx, initial_job_idx + len(job_overrides))
        singleton_state = Singleton.get_state()
        arguments = []
        for number, overrides in zip(numbers, job_overrides, strict=True):
            log.info(f"\t#{number}: {' '.join(filter_overrides(overrides))}")
            arguments.append((list(overrides), "hydra.sweep.dir", number, f"job_id_for_{number}", singleton_state))
        jobs = self.executor().map_array(self, *zip(*arguments, strict=True))
        returns = []
        for number, job in zip(numbers, jobs, strict=True):
            try:
                returns.append(job.results()[0])
            except (UncompletedJobError, FailedJobError) as error:  # it died: this job failed, the others stand
                reason = f"its job {job.job_id} ended without a result: {first_line(error)}".strip()
                returns.append(died_return(number, reason))
        return returns


class SlurmGpuLauncher(OneFailurePerJob, SlurmLauncher):
    pass


class LocalGpuLauncher(OneFailurePerJob, LocalLauncher):
    pass
