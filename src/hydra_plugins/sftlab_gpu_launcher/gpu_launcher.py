"""``hydra/launcher=gpus``: the sweep's jobs in parallel on one host, each on its own GPU.

Built on Hydra's joblib launcher (``hydra-joblib-launcher``), which runs a batch of jobs in worker processes but
knows nothing of GPUs. This launcher adds one override to each job of a batch, ``hydra.job.env_set.
CUDA_VISIBLE_DEVICES=<gpu>``, the batch's i-th job getting ``gpus[i % len(gpus)]``, so Hydra sets the variable in
the worker before the job starts and CUDA, initialised by the job, sees that GPU only. ``n_jobs`` defaults to the
number of GPUs, and the Optuna sweeper asks that many trials at once (its ``n_jobs: null``). After each batch the
workers are shut down: a worker whose CUDA was initialised on one GPU cannot move to another, so the next batch starts
in fresh processes (a few seconds of imports and a model load, against minutes of training).

A GPU listed twice runs two jobs at once (``hydra.launcher.gpus=[0,0,1,1]``: small models). With ``gpus: null`` the
launcher takes the GPUs this process may use: ``CUDA_VISIBLE_DEVICES`` if set, else those ``nvidia-smi`` lists.
A job that fails on one GPU fails its own trial; the other jobs of the batch run on.
"""

import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.utils import JobReturn
from hydra.errors import HydraException
from hydra_plugins.hydra_joblib_launcher.config import JobLibLauncherConf
from hydra_plugins.hydra_joblib_launcher.joblib_launcher import JoblibLauncher


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


def pin(job_overrides: Sequence[Sequence[str]], gpus: Sequence[str]) -> list[list[str]]:
    """Each job's overrides plus the ``CUDA_VISIBLE_DEVICES`` of its place in the batch."""
    return [
        [*overrides, f"++hydra.job.env_set.CUDA_VISIBLE_DEVICES={gpus[index % len(gpus)]}"]
        for index, overrides in enumerate(job_overrides)
    ]


class GpuLauncher(JoblibLauncher):
    def __init__(self, gpus: Sequence[Any] | None = None, **joblib: Any) -> None:
        self.gpus = [str(gpu) for gpu in gpus] if gpus is not None else visible_gpus()
        if not self.gpus:
            raise HydraException(
                "hydra/launcher=gpus: no GPU found (CUDA_VISIBLE_DEVICES is empty and nvidia-smi lists none); "
                "name them with hydra.launcher.gpus=[0,1], or use hydra/launcher=joblib"
            )
        if joblib.get("n_jobs") is None:
            joblib["n_jobs"] = len(self.gpus)
        super().__init__(**joblib)

    @property
    def n_jobs(self) -> int:
        """Jobs run at once: the batch size the Optuna sweeper asks for when its own ``n_jobs`` is null."""
        return int(self.joblib["n_jobs"])

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from joblib.externals.loky import get_reusable_executor

        try:
            return super().launch(pin(job_overrides, self.gpus), initial_job_idx)
        finally:
            get_reusable_executor(max_workers=self.n_jobs, reuse=True).shutdown(wait=True)


@dataclass
class GpuLauncherConf(JobLibLauncherConf):
    _target_: str = "hydra_plugins.sftlab_gpu_launcher.gpu_launcher.GpuLauncher"
    # CUDA_VISIBLE_DEVICES values (indices or UUIDs) to hand out, one job each; null: all visible GPUs.
    gpus: Any = None
    # Jobs at once; null: one per entry of gpus.
    n_jobs: Any = None


ConfigStore.instance().store(group="hydra/launcher", name="gpus", node=GpuLauncherConf, provider="sftlab_gpu_launcher")
