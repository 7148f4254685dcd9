"""The multirun as found on disk: each job dir's config, overrides, group choices, scores, metrics and failure, the
values of its objectives, and what the Optuna sweeper wrote next to the jobs.

Reads files only (no torch, no model code), so the report runs on a laptop.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from sftlab import objectives, rundir
from sftlab.errors import SftlabError

UNKNOWN_TEST_SET = "unknown"
DEFAULT_OBJECTIVE = "chrf"  # eval.objective's default


@dataclass
class Job:
    """One job dir of the multirun, as found on disk."""

    name: str
    path: Path
    config: dict[str, Any] = field(default_factory=dict)
    overrides: list[str] = field(default_factory=list)
    choices: dict[str, str] = field(default_factory=dict)  # config group -> chosen option (hydra.runtime.choices)
    scores: dict[str, Any] | None = None  # eval.json
    metrics: dict[str, Any] | None = None  # metrics.json
    failure: dict[str, Any] | None = None  # failure.json
    problems: list[str] = field(default_factory=list)  # unreadable files

    @property
    def status(self) -> str:
        """``failed`` (failure.json), ``evaluated`` (eval.json), ``trained`` (metrics.json with the evaluation
        disabled: complete, with no translation scores to wait for), else ``missing`` (unfinished)."""
        if self.failure is not None:
            return "failed"
        if self.scores is not None:
            return "evaluated"
        if self.metrics is not None and node(self.config, "eval.enabled") is False:
            return "trained"
        return "missing"

    @property
    def finished(self) -> bool:
        """Finished as configured, so its objectives can be read: evaluated, or trained without evaluation."""
        return self.status in ("evaluated", "trained")

    @property
    def format(self) -> str:
        return str(node(self.config, "prompt.name") or (self.scores or {}).get("prompt_format") or "?")

    @property
    def seed(self) -> Any:
        return node(self.config, "seed")

    @property
    def test_set(self) -> str:
        return str((self.scores or {}).get("test_set_sha256") or UNKNOWN_TEST_SET)

    @property
    def objectives(self) -> list[str]:
        """``eval.objective`` as a list: one name, or several for a multi-objective run."""
        return objectives.names(node(self.config, "eval.objective") or DEFAULT_OBJECTIVE)

    def override_values(self) -> dict[str, str]:
        """The command line's ``key=value`` overrides by key (``+``/``++`` stripped; deletions left out)."""
        found = {}
        for override in self.overrides:
            key, equals, value = override.partition("=")
            if equals and not key.startswith("~"):
                found[key.lstrip("+")] = value
        return found


def node(config: dict[str, Any], dotted: str) -> Any:
    """The value at ``a.b.c`` in a nested config, as it is (a config group stays a dict); None when absent."""
    value: Any = config
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def job_sort_key(path: Path) -> tuple[int, int | str]:
    return (0, int(path.name)) if path.name.isdigit() else (1, path.name)


def is_job_dir(path: Path) -> bool:
    """Hydra's numbered job subdirs, and any subdir holding a run-dir file."""
    markers = (rundir.HYDRA_CONFIG, rundir.EVAL, rundir.FAILURE, rundir.METRICS, rundir.PREDICTIONS)
    return path.is_dir() and (path.name.isdigit() or any((path / marker).exists() for marker in markers))


def read_optional(job: Job, name: str, reader: Any) -> Any:
    """A run-dir file's content, None when absent; an unreadable file is noted on the job, not fatal."""
    path = job.path / name
    if not path.is_file():
        return None
    try:
        return reader(path)
    except (OSError, ValueError, yaml.YAMLError) as error:
        job.problems.append(f"{name} unreadable ({type(error).__name__}: {str(error).splitlines()[0]})")
        return None


def read_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def read_choices(path: Path) -> dict[str, str]:
    """``hydra.runtime.choices`` of Hydra's own config: which option each config group took (``trainer: quick``)."""
    choices = node(read_yaml(path) or {}, "hydra.runtime.choices") or {}
    return {str(group): str(option) for group, option in choices.items() if option is not None}


def load_job(path: Path) -> Job:
    job = Job(name=path.name, path=path)
    job.config = read_optional(job, rundir.HYDRA_CONFIG, read_yaml) or {}
    job.overrides = [str(item) for item in read_optional(job, rundir.HYDRA_OVERRIDES, read_yaml) or []]
    job.choices = read_optional(job, rundir.HYDRA_SETTINGS, read_choices) or {}
    job.scores = read_optional(job, rundir.EVAL, rundir.read_json)
    if job.scores is not None and not all(key in job.scores for key in ("directions", "macro")):
        job.problems.append(f"{rundir.EVAL} has no directions/macro scores")
        job.scores = None
    job.metrics = read_optional(job, rundir.METRICS, rundir.read_json)
    job.failure = read_optional(job, rundir.FAILURE, rundir.read_json)
    return job


def find_jobs(sweep_dir: Path) -> list[Job]:
    if not sweep_dir.is_dir():
        raise SftlabError(f"{sweep_dir}: not a directory")
    paths = sorted((path for path in sweep_dir.iterdir() if is_job_dir(path)), key=job_sort_key)
    if not paths:
        raise SftlabError(
            f"{sweep_dir}: no runs found (expected Hydra job dirs 0/, 1/, ... with {rundir.HYDRA_CONFIG})"
        )
    return [load_job(path) for path in paths]


def missing_reason(job: Job) -> str:
    """Why a job that did not fail is unfinished."""
    if job.problems:
        return "; ".join(job.problems)
    if not job.config:
        return f"no {rundir.HYDRA_CONFIG}, {rundir.EVAL} or {rundir.FAILURE} (not started, or still starting)"
    if node(job.config, "eval.enabled") is False:
        return f"evaluation disabled and no {rundir.METRICS} or {rundir.FAILURE} (still training, or killed)"
    if job.metrics is not None:
        return f"trained but no {rundir.EVAL} (still evaluating, or killed during evaluation)"
    return f"no {rundir.EVAL} and no {rundir.FAILURE} (still running, or killed)"


def objective_value(job: Job, objective: str) -> float | None:
    """One objective's value for this job, read back from eval.json/metrics.json; None when not recorded."""
    return objectives.read(objective, job.scores, job.metrics)


def objective_of(job: Job) -> tuple[str, float | None]:
    """The (first) objective the sweep optimised for this job (``eval.objective``) and its value."""
    objective = job.objectives[0]
    return objective, objective_value(job, objective)


def objectives_of(jobs: list[Job]) -> list[str]:
    """Every objective the jobs name, in order of first appearance: a multi-objective run's list, in its order."""
    return list(dict.fromkeys(name for job in jobs for name in job.objectives))


def optuna_summary(sweep_dir: Path) -> list[str]:
    """What the Optuna sweeper wrote next to the jobs (optimization_results.yaml, trials.csv), in a few lines."""
    results_path, trials_path = sweep_dir / rundir.SWEEP_RESULTS, sweep_dir / rundir.SWEEP_TRIALS
    results: dict[str, Any] = {}
    lines: list[str] = []
    if results_path.is_file():
        try:
            results = read_yaml(results_path) or {}
        except (OSError, yaml.YAMLError) as error:
            return [f"{rundir.SWEEP_RESULTS} unreadable ({type(error).__name__})"]
        lines = results_lines(results)
    if trials_path.is_file() and not isinstance(results.get("trials"), dict):
        try:
            trials = pd.read_csv(trials_path)
        except (OSError, ValueError) as error:
            return [*lines, f"{rundir.SWEEP_TRIALS} unreadable ({type(error).__name__})"]
        states = Counter(trials["state"]) if "state" in trials else {}
        detail = f" ({', '.join(f'{state} {count}' for state, count in states.items())})" if states else ""
        lines.append(f"{rundir.SWEEP_TRIALS}: {len(trials)} trials{detail}")
    return lines


def results_lines(results: dict[str, Any]) -> list[str]:
    """optimization_results.yaml in words: the best trial (or the multi-objective front's size), its rerun."""
    lines = []
    if isinstance(results.get("solutions"), list):  # a multi-objective study: its Pareto front, as Optuna saw it
        lines.append(f"Optuna Pareto front: {len(results['solutions'])} trials")
    elif results.get("best_value") is None:
        lines.append(f"Optuna: no complete trial ({rundir.SWEEP_RESULTS} has no best value)")
    else:
        trial = f" (trial {results['best_trial']})" if results.get("best_trial") is not None else ""
        lines.append(f"Optuna best value: {format_value(results['best_value'])}{trial}")
    if isinstance(results.get("best_params"), dict):
        params = ", ".join(f"{k}={format_value(v)}" for k, v in results["best_params"].items())
        lines.append(f"Optuna best params: {params}")
    if results.get("best_run_dir"):
        lines.append(f"best run dir: `{results['best_run_dir']}`")
    if results.get("rerun"):
        lines.append(f"rerun the best: `{results['rerun']}`")
    if isinstance(results.get("trials"), dict):
        lines.append("trials by state: " + ", ".join(f"{k} {v}" for k, v in results["trials"].items()))
    return lines


def format_value(value: Any) -> str:
    """A value as a command-line override writes it: ``0.0002``, ``[chrf,train_seconds]``."""
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return "[" + ",".join(format_value(item) for item in value) + "]"
    return str(value)
