"""``hydra/launcher=ray_gpus`` (src/hydra_plugins/sftlab_gpu_launcher/ray_gpus.py): a real local Ray runs the Optuna
sweeper's trials as tasks of one GPU each. Ray is told this host has two GPUs, so it hands each task its
``CUDA_VISIBLE_DEVICES`` as it would on a GPU node; the toy app (tests/apps/crash_app.py) records it, and kills its own
worker process on the GPU named by ``crash_on``."""

from __future__ import annotations

import json

import optuna
import pytest
from optuna.trial import TrialState

from conftest import crash_app_sweep
from test_sweeper import compose_sweep

pytest.importorskip("hydra_plugins.hydra_ray_launcher", reason="the `ray` extra is not installed")

from hydra_plugins.sftlab_gpu_launcher.ray_gpus import LOCAL_OBJECT_STORE_BYTES, init_options, trials_at_once  # noqa: E402


def test_the_config_composes_into_sftlabs_launcher_with_one_gpu_a_task_and_no_reruns():
    launcher = compose_sweep("hydra/launcher=ray_gpus").hydra.launcher
    assert launcher._target_ == "hydra_plugins.sftlab_gpu_launcher.ray_gpus.RayGpuLauncher"
    assert launcher.ray.remote.num_gpus == 1 and launcher.ray.remote.max_retries == 0
    assert launcher.ray.init.address is None


def test_a_ray_started_for_the_sweep_gets_a_small_object_store_a_joined_cluster_keeps_its_own():
    assert init_options({"address": None, "num_gpus": 2}) == {
        "num_gpus": 2,
        "object_store_memory": LOCAL_OBJECT_STORE_BYTES,
    }
    # Ray refuses object_store_memory when joining a running cluster (hydra-ray-launcher passes it anyway).
    assert init_options({"address": "auto"}) == {"address": "auto"}


def test_one_trial_runs_per_gpu_of_the_cluster():
    assert trials_at_once({"GPU": 8.0, "CPU": 64.0}, {"num_gpus": 1}) == 8
    assert trials_at_once({"GPU": 8.0, "CPU": 64.0}, {"num_gpus": 2}) == 4
    assert trials_at_once({"CPU": 64.0}, {"num_gpus": 1}) == 1  # none yet: one at a time, waiting for a GPU node
    assert trials_at_once({"CPU": 6.0}, {"num_gpus": 0, "num_cpus": 2}) == 3


def test_a_task_whose_worker_dies_fails_its_own_trial_and_its_batch_mate_completes(tmp_path):
    """Two trials at once (one per GPU Ray was given); the job Ray puts on GPU 0 kills its worker. Hydra's own Ray
    launcher raised out of the batch there and so failed both trials."""
    result = crash_app_sweep(
        tmp_path,
        "hydra/launcher=ray_gpus",
        "+hydra.launcher.ray.init.num_gpus=2",
        "+hydra.launcher.ray.init.num_cpus=2",
        "+crash_on='0'",
        "+repeat=choice(1,2)",
        env={"RAY_USAGE_STATS_ENABLED": "0"},
    )
    log = result.stdout[-4000:] + result.stderr[-4000:]
    assert result.returncode == 0, log
    assert "this process runs up to 2 at once" in log  # n_jobs: the two GPUs Ray was given
    trials = optuna.load_study(study_name="crash_app", storage=f"sqlite:///{tmp_path / 'optuna.db'}").trials
    failed = [t for t in trials if t.state == TrialState.FAIL]
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(failed) == 1 and len(complete) == 1, log
    assert failed[0].user_attrs["reason"].startswith("its Ray task died: WorkerCrashedError"), log
    assert not (tmp_path / str(failed[0].number) / "job.json").exists()
    job = json.loads((tmp_path / str(complete[0].number) / "job.json").read_text())
    assert job["gpu"] == "1"  # Ray pinned the batch's other task to the other GPU
