"""``hydra/launcher=slurm_gpus`` (conf/hydra/launcher/slurm_gpus.yaml, Hydra's submitit launcher) on a real one-node
SLURM cluster with two GPUs (tests/slurm_cluster.py): the Optuna sweeper's trials go out as SLURM jobs of one GPU each,
two at a time, and SLURM hands each its own ``CUDA_VISIBLE_DEVICES``. The toy app (tests/apps/crash_app.py) records
the GPU it got."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import optuna
import pytest
from optuna.trial import TrialState

from conftest import CONF, ROOT
from slurm_cluster import slurm_cluster


@pytest.fixture(scope="module")
def slurm_env():
    with slurm_cluster(gpus=2) as env:
        yield env


def test_trials_run_as_slurm_jobs_two_at_once_each_on_its_own_gpu(slurm_env, tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "tests" / "apps" / "crash_app.py"),
            "--config-dir",
            str(CONF),
            "-m",
            "hydra/sweeper=sftlab_optuna",
            "hydra/sweeper/sampler=grid",
            "hydra/launcher=slurm_gpus",
            "hydra.launcher.cpus_per_task=1",  # the test node's CPUs and memory, not a GPU node's
            "hydra.launcher.mem_gb=1",
            "hydra.sweeper.n_jobs=2",
            f"hydra.sweep.dir={tmp_path}",
            "+crash_on=none",
            "+repeat=choice(1,2,3)",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **slurm_env},
    )
    log = result.stdout[-4000:] + result.stderr[-4000:]
    assert result.returncode == 0, log
    assert "Submitit 'slurm' sweep output dir" in log
    trials = optuna.load_study(study_name="crash_app", storage=f"sqlite:///{tmp_path / 'optuna.db'}").trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3, log
    jobs = {t.number: json.loads((tmp_path / str(t.number) / "job.json").read_text()) for t in trials}
    assert sorted(jobs[n]["gpu"] for n in (0, 1)) == ["0", "1"]  # the first batch: both at once, one GPU each
    assert jobs[2]["gpu"] in {"0", "1"}
    job_dirs = [path.name for path in (tmp_path / ".submitit").iterdir() if path.is_dir()]
    array_tasks = [name.split("_") for name in job_dirs if re.fullmatch(r"\d+_\d+", name)]
    assert len(array_tasks) == 2 and array_tasks[0][0] == array_tasks[1][0], job_dirs  # the batch: one job array
