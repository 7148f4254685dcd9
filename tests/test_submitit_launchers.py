"""``hydra/launcher=slurm_gpus`` (conf/hydra/launcher/slurm_gpus.yaml: Hydra's submitit config, sftlab's launcher in
src/hydra_plugins/sftlab_gpu_launcher/submitit_gpus.py) on a real one-node SLURM cluster with two GPUs
(tests/helpers/slurm_cluster.py): the Optuna sweeper's trials go out as SLURM jobs of one GPU each, two at a time,
and SLURM hands each its own ``CUDA_VISIBLE_DEVICES``. A job that dies fails its own trial only, shown over
submitit's local executor: the test cluster keeps no accounting, without which submitit cannot see a SLURM job die.
The toy app
(tests/apps/crash_app.py) records the GPU it got, or kills its own process."""

from __future__ import annotations

import json
import re

import optuna
import pytest
from optuna.trial import TrialState

from conftest import crash_app_sweep
from helpers.slurm_cluster import slurm_cluster


@pytest.fixture(scope="module")
def slurm_env():
    with slurm_cluster(gpus=2) as env:
        yield env


def test_trials_run_as_slurm_jobs_two_at_once_each_on_its_own_gpu(slurm_env, tmp_path):
    result = crash_app_sweep(
        tmp_path,
        "hydra.sweeper.n_jobs=2",
        "hydra/launcher=slurm_gpus",
        "hydra.launcher.cpus_per_task=1",  # the test node's CPUs and memory, not a GPU node's
        "hydra.launcher.mem_gb=1",
        "+crash_on=none",
        "+repeat=choice(1,2,3)",
        env=slurm_env,
    )
    log = result.stdout[-4000:] + result.stderr[-4000:]
    assert result.returncode == 0, log
    assert "Submitit 'slurm': 2 jobs" in log  # sftlab's launcher (slurm_gpus.yaml's _target_)
    trials = optuna.load_study(study_name="crash_app", storage=f"sqlite:///{tmp_path / 'optuna.db'}").trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3, log
    jobs = {t.number: json.loads((tmp_path / str(t.number) / "job.json").read_text()) for t in trials}
    assert sorted(jobs[n]["gpu"] for n in (0, 1)) == ["0", "1"]  # the first batch: both at once, one GPU each
    assert jobs[2]["gpu"] in {"0", "1"}
    job_dirs = [path.name for path in (tmp_path / ".submitit").iterdir() if path.is_dir()]
    array_tasks = [name.split("_") for name in job_dirs if re.fullmatch(r"\d+_\d+", name)]
    assert len(array_tasks) == 2 and array_tasks[0][0] == array_tasks[1][0], job_dirs  # the batch: one job array


def test_a_job_that_dies_fails_its_own_trial_and_its_batch_mate_completes(tmp_path):
    """Hydra's own submitit launcher raised out of the batch at the dead job, and so failed both trials."""
    result = crash_app_sweep(
        tmp_path,
        "hydra.sweeper.n_jobs=2",
        "hydra/launcher=submitit_local",
        "hydra.launcher._target_=hydra_plugins.sftlab_gpu_launcher.submitit_gpus.LocalGpuLauncher",
        "+crash_on=none",
        "+crash_on_repeat=1",
        "+repeat=choice(1,2)",
    )
    log = result.stdout[-4000:] + result.stderr[-4000:]
    assert result.returncode == 0, log
    trials = optuna.load_study(study_name="crash_app", storage=f"sqlite:///{tmp_path / 'optuna.db'}").trials
    outcome = {t.params["+repeat"]: t for t in trials}
    assert outcome[1].state == TrialState.FAIL and outcome[2].state == TrialState.COMPLETE, log
    assert "ended without a result" in outcome[1].user_attrs["reason"], log
    assert (tmp_path / str(outcome[2].number) / "job.json").is_file()
