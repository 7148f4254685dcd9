"""The jobs of a multirun as found on disk: each job dir's config, overrides, scores, metrics and failure.

Reads files only (no torch, no model code), so the report runs on a laptop.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sftlab import objectives, rundir
from sftlab.errors import SftlabError

UNKNOWN_TEST_SET = "unknown"


@dataclass
class Job:
    """One job dir of the multirun, as found on disk."""

    name: str
    path: Path
    config: dict[str, Any] = field(default_factory=dict)
    overrides: list[str] = field(default_factory=list)
    scores: dict[str, Any] | None = None  # eval.json
    metrics: dict[str, Any] | None = None  # metrics.json
    failure: dict[str, Any] | None = None  # failure.json
    problems: list[str] = field(default_factory=list)  # unreadable files

    @property
    def status(self) -> str:
        if self.failure is not None:
            return "failed"
        return "evaluated" if self.scores is not None else "missing"

    @property
    def format(self) -> str:
        return str(lookup(self.config, "prompt.name") or (self.scores or {}).get("prompt_format") or "?")

    @property
    def seed(self) -> Any:
        return lookup(self.config, "seed")

    @property
    def test_set(self) -> str:
        return str((self.scores or {}).get("test_set_sha256") or UNKNOWN_TEST_SET)


def lookup(config: dict[str, Any], dotted: str) -> Any:
    """The value at ``a.b.c`` in a nested config; a config group (a dict with a ``name``) stands for its name."""
    value: Any = config
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    if isinstance(value, dict):
        return value.get("name", yaml.safe_dump(value, default_flow_style=True).strip())
    return str(value) if isinstance(value, list) else value


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


def load_job(path: Path) -> Job:
    job = Job(name=path.name, path=path)
    job.config = read_optional(job, rundir.HYDRA_CONFIG, read_yaml) or {}
    job.overrides = [str(item) for item in read_optional(job, rundir.HYDRA_OVERRIDES, read_yaml) or []]
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
    """Why a job that did not fail has no eval.json."""
    if job.problems:
        return "; ".join(job.problems)
    if not job.config:
        return f"no {rundir.HYDRA_CONFIG}, {rundir.EVAL} or {rundir.FAILURE} (not started, or still starting)"
    if lookup(job.config, "eval.enabled") is False:
        return "evaluation disabled (eval.enabled=false)"
    if job.metrics is not None:
        return f"trained but no {rundir.EVAL} (still evaluating, or killed during evaluation)"
    return f"no {rundir.EVAL} and no {rundir.FAILURE} (still running, or killed)"


def objective_of(job: Job) -> tuple[str, float | None]:
    """The value the sweep optimised for this job (``eval.objective``), read back from eval.json/metrics.json."""
    objective = str(lookup(job.config, "eval.objective") or "chrf")
    return objective, objectives.read(objective, job.scores, job.metrics)
