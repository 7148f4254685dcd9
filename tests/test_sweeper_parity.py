"""Parity with the official hydra-optuna-sweeper on its own example shapes (tests/apps: sphere, grid, Binh-Korn
multi-objective, custom search space) run with hydra/sweeper=sftlab_optuna, and what sftlab adds or does on purpose
differently: Pareto files, metric names, trial links, seeds that reproduce on any fresh storage, failures that fail,
one-line configuration errors, Ctrl-C. Every sweep here is a real one of a toy app (a second or two each)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from conftest import ROOT, takes_ctrl_c
from sftlab.sweep.trial import storage_of

APPS = ROOT / "tests" / "apps"


def run_app(app: str, sweep_dir: Path, *overrides: str) -> subprocess.CompletedProcess:
    """``python tests/apps/<app>.py -m ...`` from the apps dir (custom_search_space names a module there)."""
    return subprocess.run(
        [
            sys.executable,
            str(APPS / f"{app}.py"),
            *(line for line in overrides if line.startswith("--")),  # Hydra's options, before the overrides
            "-m",
            f"hydra.sweep.dir={sweep_dir}",
            *(line for line in overrides if not line.startswith("--")),
        ],
        cwd=APPS,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HYDRA_FULL_ERROR": "0"},
    )


def results(sweep_dir: Path) -> dict:
    return yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())


def study_of(sweep_dir: Path, name: str, storage: str | None = None) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=storage_of(storage or f"sqlite:///{sweep_dir / 'optuna.db'}"))


def log_of(result: subprocess.CompletedProcess) -> str:
    return result.stdout[-3000:] + result.stderr[-3000:]


def dominates(a: list[float], b: list[float]) -> bool:
    return all(x <= y for x, y in zip(a, b, strict=True)) and any(x < y for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("with_commandline", [True, False])
def test_the_sphere_example_with_a_delete_override(with_commandline, tmp_path):
    storage = f"sqlite:///{tmp_path / 'test.db'}"
    extra = ["x=choice(0, 1, 2)", "y=0"] if with_commandline else []
    result = run_app(
        "sphere",
        tmp_path,
        f"hydra.sweeper.storage={storage}",
        "hydra.sweeper.study_name=test-optuna-example",
        "hydra/sweeper/sampler=tpe",
        "hydra.sweeper.sampler.seed=123",
        "~z",
        *extra,
    )
    assert result.returncode == 0, log_of(result)
    study, found = study_of(tmp_path, "test-optuna-example", storage), results(tmp_path)
    assert found["name"] == "optuna" and found["best_value"] == study.best_value
    assert found["best_params"] == study.best_params
    assert ("y" in study.best_params) is not with_commandline  # a fixed value is not a parameter
    assert found["best_value"] <= 2.27  # the official test's bound for TPE on this sphere
    assert "'~z'" in found["rerun"]
    # The job configs had z deleted; the "Launching" lines show the overrides only.
    assert "z" not in yaml.safe_load((tmp_path / "0" / ".hydra" / "config.yaml").read_text())
    assert "~z" in log_of(result) and "trial_id" not in log_of(result) and "sweeper.trial" not in log_of(result)


def test_a_delete_with_a_value_is_accepted(tmp_path):
    result = run_app("sphere", tmp_path, "hydra.sweeper.n_trials=2", "~z=1")
    assert result.returncode == 0, log_of(result)
    assert results(tmp_path)["trials"] == {"complete": 2}


@pytest.mark.parametrize("n_trials", [10, 1])
def test_the_grid_example(n_trials, tmp_path):
    result = run_app("sphere", tmp_path, "--config-name=grid", f"hydra.sweeper.n_trials={n_trials}")
    assert result.returncode == 0, log_of(result)
    best = results(tmp_path)["best_params"]
    assert best["x"] in (-1, 1) and best["y"] in (-1.0, 0.0, 1.0) and best["z"] in ("foo", "bar")
    assert len(study_of(tmp_path, "sphere").trials) == n_trials  # the grid holds 2 x 3 x 2 = 12 (stop inclusive)


@pytest.mark.parametrize("with_commandline", [True, False])
def test_the_multi_objective_example_writes_its_pareto_front(with_commandline, tmp_path):
    extra = ["x=range(0, 5)", "y=range(0, 3)"] if with_commandline else []
    result = run_app("binh_korn", tmp_path, "hydra/sweeper/sampler=random", "hydra.sweeper.sampler.seed=123", *extra)
    assert result.returncode == 0, log_of(result)
    solutions = results(tmp_path)["solutions"]
    for a in solutions:
        assert a["params"]["x"] % 1 == 0 if with_commandline else a["params"]["x"] % 1 in (0, 0.5)
        assert not any(dominates(b["values"], a["values"]) for b in solutions)
    study = study_of(tmp_path, "multi-objective")
    assert [d.name for d in study.directions] == ["MINIMIZE", "MINIMIZE"] and study.metric_names == ["v0", "v1"]
    front = {t.number for t in study.best_trials}
    assert {s["values"][0] for s in solutions} == {t.values[0] for t in study.best_trials}
    # pareto_front.csv holds the front with its metric names; best_overrides.yaml the front's best on v0.
    import pandas as pd

    table = pd.read_csv(tmp_path / "pareto_front.csv")
    assert set(table["number"]) == front and {"v0", "v1", "params_x", "params_y", "run_dir", "rerun"} <= set(table)
    assert (tmp_path / "pareto_front.png").stat().st_size > 0
    chosen = min(study.best_trials, key=lambda t: t.values)
    assert results(tmp_path)["best_trial"] == chosen.number
    best = yaml.safe_load((tmp_path / "best_overrides.yaml").read_text())
    assert best == {"x": chosen.params["x"], "y": chosen.params["y"]}


def test_the_custom_search_space_example(tmp_path):
    result = run_app(
        "custom_space",
        tmp_path,
        "hydra/sweeper/sampler=random",
        "hydra.sweeper.sampler.seed=123",
        "max_z_difference_from_x=0.3",
    )
    assert result.returncode == 0, log_of(result)
    best = results(tmp_path)["best_params"]
    assert abs(best["x"] - best["z"]) <= 0.3 and 0 <= best["+w"] <= 1


def test_the_study_names_its_metrics_and_each_trial_links_its_run(tmp_path):
    """What optuna-dashboard shows, read back through Optuna's API: metric names, run dirs and W&B links."""
    result = run_app(
        "sphere", tmp_path, "hydra.sweeper.n_trials=3", "hydra.sweeper.metric_names=x2_plus_y2", "+tracked=true"
    )
    assert result.returncode == 0, log_of(result)
    study = study_of(tmp_path, "sphere")
    assert study.metric_names == ["x2_plus_y2"]
    for t in study.trials:
        assert t.user_attrs["run_dir"] == str(tmp_path / str(t.number))
        assert t.user_attrs["wandb_id"] == f"run{t.number}"
        assert t.user_attrs["wandb_url"] == f"https://wandb.example/run{t.number}"


def test_a_fixed_seed_gives_the_same_trials_on_any_fresh_storage(tmp_path):
    def trial_params(name: str, storage: str | None = None) -> list[dict]:
        explicit = [f"hydra.sweeper.storage={storage}"] if storage else []
        seeded = ["hydra/sweeper/sampler=random", "hydra.sweeper.sampler.seed=7", "hydra.sweeper.n_trials=5"]
        result = run_app("sphere", tmp_path / name, *seeded, *explicit)
        assert result.returncode == 0, log_of(result)
        return [t.params for t in study_of(tmp_path / name, "sphere", storage).trials]

    default = trial_params("default")  # sqlite in the sweep dir
    assert trial_params("sqlite", f"sqlite:///{tmp_path / 'a.db'}") == default
    assert trial_params("journal", f"journal:{tmp_path / 'b.journal'}") == default
    assert len({str(p) for p in default}) > 1


@pytest.mark.parametrize("max_failure_rate", [0.5, 1.0])
def test_a_sweep_whose_trials_all_fail_exits_non_zero(max_failure_rate, tmp_path):
    result = run_app(
        "sphere",
        tmp_path,
        "hydra.sweeper.n_trials=8",
        "hydra.sweeper.n_jobs=2",
        "hydra/sweeper/sampler=random",
        f"hydra.sweeper.max_failure_rate={max_failure_rate}",
        "error=true",
    )
    assert result.returncode != 0, log_of(result)
    assert "Traceback" not in result.stderr
    failed = [t for t in study_of(tmp_path, "sphere").trials if t.state == TrialState.FAIL]
    assert {t.user_attrs["reason"] for t in failed} == {"cfg.error is true"}
    if max_failure_rate < 1.0:  # 2 of 2, then 4 of 4 (> 0.5 x 4): stopped after two batches
        assert len(failed) == 4 and "4 of 4 trials failed, more than max_failure_rate=0.5" in result.stderr
    else:  # never stopped by the rate, but a sweep with nothing but failures does not pass
        assert len(failed) == 8 and "all 8 trials failed (e.g. cfg.error is true" in result.stderr


@pytest.mark.parametrize(
    "override, message",
    [
        ("x=interval(1, 0)", "x=interval(1, 0): interval from 1.0 down to 0.0: the low bound must not exceed the high"),
        ("+r=range(8, 4)", "+r=range(8, 4): range from 8 down to 4: the start must not exceed the stop"),
        ("x=tag(log, interval(0, 1))", "x=tag(log, interval(0, 1)): "),
        (
            "hydra.sweeper.sampler._target_=optuna.samplers.NoSuchSampler",
            "hydra.sweeper.sampler: optuna.samplers.NoSuchSampler cannot be made",
        ),
        ("hydra.sweeper.direction=[minimize,sideways]", "hydra.sweeper.direction: 'sideways' is neither"),
    ],
)
def test_a_configuration_error_is_one_line_before_any_trial(override, message, tmp_path):
    result = run_app("sphere", tmp_path, override)
    assert result.returncode != 0
    assert message in result.stderr, log_of(result)
    assert "Traceback" not in result.stderr and not (tmp_path / "0").exists()


def test_a_sampler_with_a_missing_dependency_fails_before_any_trial(tmp_path):
    import importlib.util

    if importlib.util.find_spec("cmaes") is not None:
        pytest.skip("cmaes is installed: CmaEsSampler has its dependency")
    result = run_app("sphere", tmp_path, "hydra/sweeper/sampler=cmaes")
    assert result.returncode != 0
    assert "hydra.sweeper.sampler: CmaEsSampler cannot sample this search space: No module named 'cmaes'" in (
        result.stderr
    ), log_of(result)
    assert "Traceback" not in result.stderr and not (tmp_path / "0").exists()


def test_ctrl_c_stops_a_sweep_in_one_line_with_exit_130_and_its_trial_is_retried_on_resume(tmp_path):
    sweep = subprocess.Popen(
        [sys.executable, str(APPS / "sphere.py"), "-m", f"hydra.sweep.dir={tmp_path}", "+sleep=60"],
        cwd=APPS,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "HYDRA_FULL_ERROR": "0"},
        preexec_fn=takes_ctrl_c,
    )
    deadline = time.monotonic() + 60
    while not (tmp_path / "0" / "started").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    sweep.send_signal(signal.SIGINT)
    _, stderr = sweep.communicate(timeout=60)
    assert sweep.returncode == 130, stderr
    assert "Traceback" not in stderr and "interrupted (Ctrl-C)" in stderr
    trials = study_of(tmp_path, "sphere").trials
    assert trials[0].state == TrialState.FAIL and trials[0].user_attrs["reason"].startswith("interrupted")
    assert [t.state for t in trials[1:]] == [TrialState.WAITING] and trials[1].user_attrs["retry_of"] == 0


def test_resuming_a_study_whose_trials_all_failed_still_exits_non_zero(tmp_path):
    first = run_app("sphere", tmp_path, "hydra.sweeper.n_trials=2", "hydra.sweeper.max_failure_rate=1.0", "error=true")
    assert first.returncode != 0 and "all 2 trials failed" in first.stderr, log_of(first)
    again = run_app("sphere", tmp_path, "hydra.sweeper.n_trials=2", "hydra.sweeper.max_failure_rate=1.0", "error=true")
    assert again.returncode != 0 and "all 2 trials failed (e.g. cfg.error is true" in again.stderr, log_of(again)
    assert len(study_of(tmp_path, "sphere").trials) == 2  # nothing was run twice
