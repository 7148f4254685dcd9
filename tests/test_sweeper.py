"""The Optuna sweeper plugin (src/hydra_plugins/sftlab_optuna_sweeper) and the GPU launcher: real sweeps of the tiny
model, read back from the study's storage (SQLite, a journal file, PostgreSQL), several sweep processes sharing one
study, plus the pieces that need no sweep (grammar, pruner direction, outcomes, launcher configs)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest
import yaml
from hydra import compose, initialize_config_dir
from hydra.core.utils import JobReturn, JobStatus
from omegaconf import OmegaConf
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState

from conftest import CONF, ROOT, TINY_RUN, crash_app_sweep, run_module
from hydra_plugins.sftlab_optuna_sweeper._impl import finished_trials
from hydra_plugins.sftlab_optuna_sweeper._storage import open_storage
from sftlab import rundir
from sftlab.sweep import JobFailure
from sftlab.sweep.trial import LossPruner, TrialSpec, connect

STUDY = "lora_lr_seq"

# TINY_RUN, made shorter still: two steps with an evaluation loss after each, no translation evaluation (the
# objective is the evaluation loss), no adapter saved; sequence lengths where the tiny tokenizer drops nothing.
FAST = {
    **dict(line.split("=", 1) for line in TINY_RUN),
    "trainer.max_steps": "2",
    "trainer.eval_steps": "1",
    "trainer.eval_on_start": "false",
    "trainer.save_adapter": "false",
    "eval.enabled": "false",
    "eval.objective": "eval_loss",
    "data.max_train_records": "8",
    "data.max_val_records": "4",
    "trainer.max_seq_length": "choice(1024,2048)",
}


def sweep_command(sweep_dir: Path, *extra: str) -> list[str]:
    overrides = {**FAST, **dict(line.split("=", 1) for line in extra)}
    args = [f"{key}={value}" for key, value in overrides.items()]
    return ["sftlab.train", "-m", "hparams_search=lora_lr_seq", *args, f"hydra.sweep.dir={sweep_dir}"]


def sweep(sweep_dir: Path, *extra: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return run_module(*sweep_command(sweep_dir, *extra), timeout=timeout)


def load(sweep_dir: Path) -> optuna.Study:
    return optuna.load_study(study_name=STUDY, storage=f"sqlite:///{sweep_dir / 'optuna.db'}")


def output(result: subprocess.CompletedProcess) -> str:
    return result.stdout[-4000:] + result.stderr[-4000:]


def finished(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return finished_trials(study.trials)


@pytest.fixture(scope="module")
def three_trials_run(tmp_path_factory) -> tuple[Path, str]:
    """Three trials on the GPU launcher with two "GPUs" (CPU torch ignores CUDA_VISIBLE_DEVICES): its sweep dir and
    log. Two worker processes, so what the tests read back also crossed from a worker to the storage."""
    sweep_dir = tmp_path_factory.mktemp("sweep") / "three"
    result = sweep(sweep_dir, "hydra/launcher=gpus", "hydra.launcher.gpus=[0,1]", "hydra.sweeper.n_trials=3")
    assert result.returncode == 0, output(result)
    return sweep_dir, result.stdout + result.stderr


@pytest.fixture(scope="module")
def three_trials(three_trials_run) -> Path:
    return three_trials_run[0]


@pytest.fixture(scope="module")
def pruned_and_failed(tmp_path_factory) -> Path:
    """A grid over max_seq_length 2048 (trains, and an always-pruning pruner stops it) and 1 (every prompt too long)."""
    sweep_dir = tmp_path_factory.mktemp("sweep") / "prune_fail"
    result = sweep(
        sweep_dir,
        "hydra/sweeper/sampler=grid",
        "hydra/sweeper/pruner=threshold",
        "hydra.sweeper.pruner.upper=0.0",  # a loss is never below 0: every trial is pruned at its first report
        "lora.r=8",
        "trainer.learning_rate=1e-4",
        "trainer.max_seq_length=choice(2048,1)",
        "hydra.sweeper.n_trials=5",  # the grid holds 2
    )
    assert result.returncode == 0, output(result)
    return sweep_dir


# ------------------------------------------------------------------------------------------------ real sweeps


def test_a_sweep_fills_its_storage_and_writes_its_artifacts(three_trials):
    study = load(three_trials)
    assert study.direction == optuna.study.StudyDirection.MINIMIZE  # eval.objective=eval_loss
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 3
    for t in study.trials:
        assert set(t.params) == {"lora.r", "trainer.learning_rate", "trainer.max_seq_length"}
        assert t.user_attrs["run_dir"] == str(three_trials / str(t.number))  # job dir = trial number
        assert sorted(t.intermediate_values) == [1, 2]  # eval_loss reported at each evaluation
        assert t.value == pytest.approx(rundir.read_json(Path(t.user_attrs["run_dir"]) / rundir.METRICS)["eval_loss"])

    results = yaml.safe_load((three_trials / "optimization_results.yaml").read_text())
    assert results["name"] == "optuna"
    assert results["best_value"] == pytest.approx(study.best_value)
    assert results["best_params"] == study.best_params
    assert results["rerun"].startswith("python -m sftlab.train ")
    assert f"lora.r={study.best_params['lora.r']}" in results["rerun"]
    assert "hydra.sweep.dir" not in results["rerun"]
    assert len((three_trials / "trials.csv").read_text().strip().splitlines()) == 4
    assert (three_trials / "optimization_history.png").stat().st_size > 0
    assert (three_trials / "param_importances.png").stat().st_size > 0

    # best_overrides.yaml is an experiment config: composing it gives the best trial's parameters
    best = (three_trials / "best_overrides.yaml").read_text()
    assert best.startswith("# @package _global_\n")
    assert "hparams_search" not in best.split("defaults:")[-1]  # the sweep's preset stays out of a one-job experiment
    search_dir = three_trials.parent / "conf_search"
    (search_dir / "experiment").mkdir(parents=True)
    shutil.copy(three_trials / "best_overrides.yaml", search_dir / "experiment" / "best.yaml")
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=[f"hydra.searchpath=[file://{search_dir}]", "experiment=best"])
    assert cfg.lora.r == study.best_params["lora.r"]
    assert cfg.lora.alpha == cfg.lora.r
    assert cfg.trainer.learning_rate == pytest.approx(study.best_params["trainer.learning_rate"])
    assert cfg.trainer.max_seq_length == study.best_params["trainer.max_seq_length"]
    assert cfg.model.name == "tiny_random" and cfg.trainer.max_steps == 2


def test_a_stopped_sweep_resumes_and_retries_a_dead_workers_trial(three_trials, tmp_path):
    sweep_dir = tmp_path / "resumed"
    shutil.copytree(three_trials, sweep_dir)
    before = {t.number: (t.datetime_start, t.datetime_complete, t.params) for t in load(sweep_dir).trials}
    # A trial left RUNNING by a worker that beat once and died (as a killed sweep leaves it).
    storage = optuna.storages.RDBStorage(f"sqlite:///{sweep_dir / 'optuna.db'}", heartbeat_interval=1)
    study = optuna.load_study(study_name=STUDY, storage=storage)
    running = study.ask()
    running.suggest_categorical("lora.r", [8, 16, 32, 64])
    running.suggest_float("trainer.learning_rate", 1e-5, 5e-4, log=True)
    running.suggest_categorical("trainer.max_seq_length", [1024, 2048])
    storage.record_heartbeat(running._trial_id)

    # Its beat is more than grace_period old by the time the sweep looks: failed, retried once, one new trial.
    result = sweep(sweep_dir, "hydra.sweeper.n_trials=5", "hydra.sweeper.heartbeat_interval=1")
    assert result.returncode == 0, output(result)
    assert f"trial {running.number} stopped (its sweep process stopped beating" in result.stdout + result.stderr
    trials = load(sweep_dir).trials
    for number, (start, complete, params) in before.items():
        assert (trials[number].datetime_start, trials[number].datetime_complete, trials[number].params) == (
            start,
            complete,
            params,
        )
    assert trials[running.number].state == TrialState.FAIL
    retries = [t for t in trials if t.user_attrs.get("retry_of") == running.number]
    assert len(retries) == 1 and retries[0].params == running.params and retries[0].state == TrialState.COMPLETE
    assert len(finished(load(sweep_dir))) == 5
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    assert len(trials) == 6  # 3 + the dead one + its retry + one new


@pytest.mark.parametrize("kind", ["journal", "postgresql"])
def test_two_sweep_processes_share_one_study_and_run_exactly_n_trials(kind, tmp_path, request):
    storage = f"journal:{tmp_path / 'study.journal'}" if kind == "journal" else request.getfixturevalue("postgres_url")
    commands = [
        sweep_command(tmp_path / f"node{node}", f"hydra.sweeper.storage={storage}", "hydra.sweeper.n_trials=5")
        for node in (0, 1)
    ]
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", *command], cwd=ROOT, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        for command in commands
    ]
    logs = [worker.communicate(timeout=600)[0] for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0], "\n".join(log[-3000:] for log in logs)

    study = optuna.load_study(study_name=STUDY, storage=open_storage(storage).storage)  # as the sweeper opens it
    counted = finished(study)
    # What each process did, shown with any failure below.
    summary = (
        "\n".join(f"#{t.number} {t.state.name} {t.user_attrs}" for t in study.trials)
        + "\n"
        + "\n".join(log[-2000:] for log in logs)
    )
    assert len(counted) == 5 and all(t.state == TrialState.COMPLETE for t in counted), summary
    assert len({t.number for t in counted}) == 5, summary
    assert len({t.user_attrs["worker"] for t in counted}) == 2, summary  # both processes ran trials...
    for t in counted:  # ...each in its own sweep dir, the job dir named by the trial number
        assert Path(t.user_attrs["run_dir"]).name == str(t.number)
        assert (Path(t.user_attrs["run_dir"]) / rundir.METRICS).is_file()
    surplus = [t for t in study.trials if t.user_attrs.get("surplus")]
    assert len(study.trials) == 5 + len(surplus) and all(t.state == TrialState.FAIL for t in surplus), summary


def test_the_gpu_launcher_runs_a_batch_at_once_one_gpu_each(three_trials_run):
    sweep_dir, log = three_trials_run
    # Batches of two (the sweeper's n_jobs follows the launcher's), then one.
    assert "Launching 2 jobs on GPUs ['0', '1']" in log and "Launching 1 jobs on GPUs" in log
    study = load(sweep_dir)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 3
    pinned = {}
    for t in study.trials:
        run = rundir.read_json(Path(t.user_attrs["run_dir"]) / rundir.RUN)
        pinned[t.number] = run["launch"]["cuda_visible_devices"]
        assert sorted(t.intermediate_values) == [1, 2]  # pruning reports reach the storage from the worker
    assert pinned == {0: "0", 1: "1", 2: "0"}  # the third trial, alone in its batch, on the first GPU's worker


def test_a_pruned_trial_is_recorded_as_pruned(pruned_and_failed):
    trials = load(pruned_and_failed).trials
    pruned = [t for t in trials if t.params["trainer.max_seq_length"] == 2048]
    assert len(pruned) == 1 and pruned[0].state == TrialState.PRUNED
    assert pruned[0].user_attrs["error_type"] == "TrialPruned"
    assert pruned[0].user_attrs["reason"].startswith("pruned at step 1")
    assert list(pruned[0].intermediate_values) == [1]


def test_a_failed_trial_is_recorded_and_the_sweep_goes_on(pruned_and_failed):
    trials = load(pruned_and_failed).trials
    assert len(trials) == 2  # the grid, both run whichever came first
    failed = [t for t in trials if t.params["trainer.max_seq_length"] == 1]
    assert len(failed) == 1 and failed[0].state == TrialState.FAIL
    assert failed[0].user_attrs["error_type"] == "SftlabError"
    assert "max_seq_length" in failed[0].user_attrs["reason"]
    results = yaml.safe_load((pruned_and_failed / "optimization_results.yaml").read_text())
    assert results["best_params"] is None and results["trials"] == {"fail": 1, "pruned": 1}


def test_a_search_space_typo_fails_before_any_trial(tmp_path):
    search_dir = tmp_path / "conf_search"
    (search_dir / "hparams_search").mkdir(parents=True)
    typo = [
        "# @package _global_",
        "defaults: [lora_lr_seq]",
        "hydra:",
        "  sweeper:",
        "    params:",
        "      lora.rnk: 8",
    ]
    (search_dir / "hparams_search" / "typo.yaml").write_text("\n".join(typo) + "\n")
    sweep_dir = tmp_path / "typo"
    result = run_module(
        "sftlab.train",
        "-m",
        "hparams_search=typo",
        f"hydra.searchpath=[file://{search_dir}]",
        f"hydra.sweep.dir={sweep_dir}",
        "model=tiny_random",
    )
    assert result.returncode != 0
    assert "'lora.rnk' (did you mean 'lora.r'?): not a key of the composed config" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (sweep_dir / "optuna.db").exists() and not (sweep_dir / "0").exists()


# ------------------------------------------------------------------------------------------------ no sweep


def compose_sweep(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("train", overrides=["hparams_search=lora_lr_seq", *overrides], return_hydra_config=True)


def test_the_search_space_config_selects_the_sweeper_and_follows_the_objective():
    cfg = compose_sweep()
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_ == "hydra_plugins.sftlab_optuna_sweeper.sweeper.SftlabOptunaSweeper"
    assert sweeper.n_trials == 20 and sweeper.study_name == STUDY and sweeper.storage is None
    assert sweeper.sampler._target_ == "optuna.samplers.TPESampler" and sweeper.sampler.seed == cfg.seed
    assert sweeper.pruner._target_ == "optuna.pruners.MedianPruner"
    assert sweeper.direction == "maximize"  # eval.objective=chrf
    assert compose_sweep("eval.objective=eval_loss").hydra.sweeper.direction == "minimize"
    assert compose_sweep("hydra.sweeper.pruner=null").hydra.sweeper.pruner is None
    assert compose_sweep("~hydra/sweeper/pruner").hydra.sweeper.pruner is None


def test_the_override_grammar_reads_as_in_the_official_plugin():
    from hydra_plugins.sftlab_optuna_sweeper._search_space import parse

    space = parse(
        OmegaConf.create(
            {
                "lora.r": "choice(8, 16)",
                "trainer.learning_rate": "tag(log, interval(1e-5, 5e-4))",
                "lora.dropout": "interval(0, 1)",
                "trainer.warmup_steps": "range(0.0, 0.5, 0.25)",
                "seed": "range(1, 3)",
                "trainer.max_steps": "10",
            }
        ),
        ["seed=choice(1, 2)"],  # the command line wins over params
    )
    assert space.distributions == {
        "lora.r": CategoricalDistribution([8, 16]),
        "trainer.learning_rate": FloatDistribution(1e-5, 5e-4, log=True),
        "lora.dropout": FloatDistribution(0.0, 1.0),  # Hydra parses interval bounds as floats
        "trainer.warmup_steps": FloatDistribution(0.0, 0.5, step=0.25),
        "seed": CategoricalDistribution([1, 2]),
    }
    assert space.fixed == {"trainer.max_steps": "10"}
    assert space.trial_overrides({"lora.r": 8}) == ["lora.r=8", "trainer.max_steps=10"]


def test_the_pruner_compares_losses_as_losses_when_the_study_maximises():
    def study_with(pruner, direction):
        study = optuna.create_study(direction=direction, pruner=pruner)
        for loss, score in ((1.0, 50.0), (1.2, 40.0)):
            t = study.ask()
            t.report(loss, 1)
            study.tell(t, score)
        return study

    median = optuna.pruners.MedianPruner(n_startup_trials=1)
    for study in (study_with(LossPruner(median), "maximize"), study_with(median, "minimize")):
        worse, better = study.ask(), study.ask()
        worse.report(3.0, 1)
        better.report(0.5, 1)
        assert worse.should_prune() and not better.should_prune()


def job_return(tmp_path: Path, status: JobStatus, value) -> JobReturn:
    ret = JobReturn(hydra_cfg=OmegaConf.create({"hydra": {"runtime": {"output_dir": str(tmp_path)}}}), status=status)
    ret.return_value = value
    return ret


def test_job_outcomes_become_trial_states_with_their_reason(tmp_path):
    from hydra_plugins.sftlab_optuna_sweeper._outcome import job_outcome

    outcome = job_outcome(job_return(tmp_path, JobStatus.COMPLETED, 1.5))
    assert (outcome.state, outcome.values, outcome.attrs) == (TrialState.COMPLETE, [1.5], {"run_dir": str(tmp_path)})
    assert job_outcome(job_return(tmp_path, JobStatus.COMPLETED, (1, 2.5)), 2).values == [1.0, 2.5]
    outcome = job_outcome(job_return(tmp_path, JobStatus.FAILED, ValueError("boom")))
    assert outcome.state == TrialState.FAIL and outcome.reason == "boom" and outcome.attrs["error_type"] == "ValueError"
    for value, n, reason in (
        (float("nan"), 1, "the task returned NaN"),
        ([1.0], 2, "the task returned 1 value(s) for 2 objectives: [1.0]"),
        (None, 1, "the task returned None, not a number"),
    ):
        outcome = job_outcome(job_return(tmp_path, JobStatus.COMPLETED, value), n)
        assert (outcome.state, outcome.reason) == (TrialState.FAIL, reason)
    # A sftlab job's failure comes back as its return value, not through failure.json.
    failed = JobFailure("SftlabError", "no training records left", user_error=True)
    outcome = job_outcome(job_return(tmp_path, JobStatus.COMPLETED, failed))
    assert (outcome.state, outcome.reason, outcome.attrs["error_type"]) == (
        TrialState.FAIL,
        "no training records left",
        "SftlabError",
    )
    pruned = JobFailure.of(trial_pruned("pruned at step 4: eval_loss 2.0000"))
    assert job_outcome(job_return(tmp_path, JobStatus.COMPLETED, pruned)).state == TrialState.PRUNED
    # The run's tracking links, from run.json through the seam, become user attrs.
    rundir.write_json(
        tmp_path / rundir.RUN, {"seed": 1, "tracking": {"wandb_id": "ab12", "wandb_url": "https://x/ab12"}}
    )
    attrs = job_outcome(job_return(tmp_path, JobStatus.COMPLETED, 1.0)).attrs
    assert attrs == {"run_dir": str(tmp_path), "wandb_id": "ab12", "wandb_url": "https://x/ab12"}


def trial_pruned(message: str) -> Exception:
    from sftlab.errors import TrialPruned

    return TrialPruned(message)


def test_training_reports_to_the_trial_its_spec_names_and_stops_when_pruned(tmp_path):
    """The job side of a trial against a real study: reports land in the storage; a pruner that always prunes
    (a loss is never below 0) stops training between its first and last step, as the sweeper's spec configures it."""
    from sftlab.training.callbacks import PruningCallback

    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(study_name="s", storage=storage, direction="maximize")
    trial_id = study.ask()._trial_id
    spec = TrialSpec(storage, "s", trial_id, {"_target_": "optuna.pruners.ThresholdPruner", "upper": 0.0}, True)
    assert TrialSpec.parse(spec.override().split("=", 1)[1].strip("'")) == spec  # the override round-trips
    reporter = connect(spec)
    assert isinstance(reporter.trial.study.pruner, LossPruner)  # the study maximises: losses compared as losses
    callback = PruningCallback(reporter)
    metrics = {"eval_loss": 2.5}
    callback.on_evaluate(None, SimpleNamespace(global_step=0, max_steps=4), None, metrics=metrics)  # step 0
    callback.on_evaluate(None, SimpleNamespace(global_step=4, max_steps=4), None, metrics=metrics)  # last step
    with pytest.raises(trial_pruned("").__class__, match="pruned at step 2"):
        callback.on_evaluate(None, SimpleNamespace(global_step=2, max_steps=4), None, metrics=metrics)
    assert optuna.load_study(study_name="s", storage=storage).trials[0].intermediate_values == {0: 2.5, 2: 2.5, 4: 2.5}


def test_the_launcher_configs_compose_and_pin_one_gpu_per_job(monkeypatch):
    from hydra_plugins.sftlab_gpu_launcher.gpu_launcher import GpuLauncher, slot_of, visible_gpus

    gpus = compose_sweep("hydra/launcher=gpus").hydra.launcher
    assert gpus._target_.endswith("GpuLauncher") and gpus.gpus is None and gpus.n_jobs is None
    slurm = compose_sweep("hydra/launcher=slurm_gpus").hydra.launcher
    assert slurm._target_.endswith("SlurmGpuLauncher") and slurm.gpus_per_node == 1 and slurm.tasks_per_node == 1
    assert compose_sweep("hydra/launcher=joblib").hydra.launcher.n_jobs == -1
    assert compose_sweep().hydra.sweeper.n_jobs is None  # follows the launcher
    assert compose_sweep().hydra.sweeper.sampler.constant_liar is True  # parallel TPE never doubles a running point

    assert [slot_of(index, ["3", "5"]) for index in range(3)] == [0, 1, 0]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2, 3")
    assert visible_gpus() == ["2", "3"] and GpuLauncher().n_jobs == 2
    with pytest.raises(Exception, match="one worker per GPU"):
        GpuLauncher(gpus=[0, 1], n_jobs=4)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    with pytest.raises(Exception, match="no GPU found"):
        GpuLauncher()


def sweep_crash_app(sweep_dir: Path, *overrides: str) -> subprocess.CompletedProcess:
    """The Optuna sweeper over the GPU launcher on GPUs "a" and "b", running tests/apps/crash_app.py."""
    return crash_app_sweep(sweep_dir, "hydra/launcher=gpus", "hydra.launcher.gpus=[a,b]", *overrides)


def test_each_gpu_worker_gets_its_own_share_of_the_cpus(tmp_path):
    from hydra_plugins.sftlab_gpu_launcher.gpu_launcher import GpuLauncher

    result = sweep_crash_app(tmp_path / "shared", "+crash_on=none", "+repeat=choice(1,2)")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    jobs = {job["gpu"]: job for job in map(json.loads, map(Path.read_text, (tmp_path / "shared").glob("*/job.json")))}
    assert sorted(jobs) == ["a", "b"]
    host = sorted(os.sched_getaffinity(0))
    for job in jobs.values():
        assert job["cpus"] and set(job["cpus"]) <= set(host)
        assert job["omp_threads"] == str(len(job["cpus"]))
    if len(host) >= 2:  # CI's two cores: one each
        assert not set(jobs["a"]["cpus"]) & set(jobs["b"]["cpus"])
        assert len(jobs["a"]["cpus"]) == len(jobs["b"]["cpus"]) == len(host) // 2
    assert GpuLauncher(gpus=["a", "b"], share_cpus=False).cpus is None  # the workers then start as the sweep did


def test_a_worker_that_dies_fails_its_own_trial_and_its_gpu_gets_a_new_worker(tmp_path):
    """The Optuna sweeper over the GPU launcher on a toy app whose jobs kill their worker on GPU "a": every batch has
    one job on each GPU, so each loses its GPU-a worker while its GPU-b job runs on."""
    result = sweep_crash_app(tmp_path, "+crash_on=a", "+repeat=choice(1,2,3,4)")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert result.stdout.count("Launching 2 jobs on GPUs") + result.stderr.count("Launching 2 jobs on GPUs") == 2
    trials = optuna.load_study(study_name="crash_app", storage=f"sqlite:///{tmp_path / 'optuna.db'}").trials
    failed = [t for t in trials if t.state == TrialState.FAIL]
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(failed) == 2 and len(complete) == 2  # the sweep and each batch's other job went on
    for t in failed:
        assert t.user_attrs["reason"].startswith("its worker process on GPU a died: TerminatedWorkerError")
    jobs = [json.loads((tmp_path / str(t.number) / "job.json").read_text()) for t in complete]
    assert {job["gpu"] for job in jobs} == {"b"} and len({job["pid"] for job in jobs}) == 1  # GPU b kept its worker


def test_a_quality_vs_cost_sweep_returns_one_value_per_objective_and_writes_its_front(tmp_path):
    """hparams_search=quality_vs_cost on the tiny model: the train task returns [eval_loss, train_seconds], the study
    minimises both under their names, and the front is written; no pruning reports (several objectives)."""
    sweep_dir = tmp_path / "qvc"
    command = sweep_command(sweep_dir, "hydra.sweeper.n_trials=2", "eval.objective=[eval_loss,train_seconds]")
    command[command.index("hparams_search=lora_lr_seq")] = "hparams_search=quality_vs_cost"
    result = run_module(*command)
    assert result.returncode == 0, output(result)
    study = optuna.load_study(study_name="quality_vs_cost", storage=f"sqlite:///{sweep_dir / 'optuna.db'}")
    assert [d.name for d in study.directions] == ["MINIMIZE", "MINIMIZE"]
    assert study.metric_names == ["eval_loss", "train_seconds"]
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2
    for t in study.trials:
        metrics = rundir.read_json(Path(t.user_attrs["run_dir"]) / rundir.METRICS)
        assert t.values == pytest.approx([metrics["eval_loss"], metrics["train_runtime_s"]])
        assert t.intermediate_values == {}
    front = (sweep_dir / rundir.SWEEP_PARETO).read_text().splitlines()
    assert front[0].startswith("number,eval_loss,train_seconds,") and len(front) == 1 + len(study.best_trials)
    assert (sweep_dir / rundir.SWEEP_PARETO_PLOT).stat().st_size > 0
    assert "sweeper.trial" not in output(result) and "trial_id" not in output(result)  # launch lines: overrides only
