"""The report of one multirun, gathered from the job dirs on disk: compare the prompt formats (and sweep trials).

    python -m sftlab.report multirun/2026-11-26/10-00-00
    python -m sftlab.report multirun/2026-11-26/10-00-00 --baseline alpaca --metric bleu --resamples 2000

Reads the job dirs (``0/``, ``1/``, ...) from disk only: ``.hydra/`` (config, overrides, group choices),
``eval.json``, ``predictions.jsonl``, ``metrics.json``, ``failure.json`` and a sweep's ``optimization_results.yaml``.
It imports no torch and no model code, so a report runs on a laptop. :func:`build_report` gathers everything the
report says into a :class:`Report`; ``sftlab.analysis.render`` turns it into markdown and ``sftlab.analysis.write``
writes ``report.md``, ``report.csv`` (scores per system x direction), ``significance.csv`` (one row per paired
test) and the plots (``sftlab.analysis.plots``) into the multirun dir.

Why it is written this way:

- A *system* is a prompt format plus the values of every parameter that varies across the evaluated runs (seed
  excluded), each shown as the command line sets it: ``alpaca [lora.r=8, trainer=quick]``; a config group counts
  as varying only when its choice differs (``sftlab.analysis.systems``). With a plain ``prompt=a,b,c seed=1,2,3``
  multirun the systems are just the formats; in a sweep, runs with different learning rates are never averaged
  together as if they were seeds.
- Scores are mean ± sample standard deviation (ddof=1) over a system's runs (its seeds). With one run the std is
  undefined: the CSV leaves it blank and the markdown shows the mean alone. Bold marks the highest mean per
  column (ties all bold; none when every system ties), which is not a claim of significance.
- Significance is sacreBLEU's own paired bootstrap (``sftlab.analysis.significance``): each system against the
  baseline format at the same parameters and the *same seed*, per direction; a system is called better (or worse)
  only when *every* paired seed is significant with the same sign (an intersection-union test).
- A sweep (varying parameters, or the sweeper's results file) gets a table of every run with every objective of
  ``eval.objective``; with two or more objectives the runs on the Pareto front are marked there and drawn in a plot
  of the first two (``sftlab.analysis.pareto``).
- Runs scored on different test sets (``test_set_sha256``) are refused, naming the groups: their scores are not
  comparable, so they are never averaged. ``--test-set PREFIX`` picks one group.
- Failed jobs (``failure.json``) and unfinished jobs are listed with their reason; they are never dropped
  silently, and the rest is still reported.
- A multirun without translation scores (``eval.enabled=false``, objectives such as ``eval_loss`` or
  ``train_seconds`` read from ``metrics.json``) still gets the sweep table, the Pareto front, the design analysis
  and the failed and unfinished jobs; the score tables, significance and the by-format plot are left out, and the
  report says why. Only a multirun with neither scores nor any objective value is an error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from sftlab import rundir
from sftlab.analysis import design_stats
from sftlab.analysis.runs import Job, find_jobs, node, objective_value, objectives_of, optuna_summary
from sftlab.analysis.significance import significance, verdicts
from sftlab.analysis.systems import varying_hparams
from sftlab.analysis.tables import run_scores, summarize, sweep_table
from sftlab.errors import SftlabError
from sftlab.objectives import SCORES

DEFAULT_BASELINE = "reasoning_tags"
DEFAULT_RESAMPLES = 1000


@dataclass
class ScoreAnalysis:
    """The translation scores of the evaluated runs of one test set: summaries per system and the paired tests."""

    test_set: str
    baseline: str
    metric: str
    resamples: int
    summary: pd.DataFrame
    tests: pd.DataFrame
    outcomes: pd.DataFrame
    notes: list[str]


@dataclass
class Report:
    """Everything the report says, gathered before anything is written.

    ``scores`` is None when no job has translation scores (``eval.json``): the report is then the sweep table, the
    Pareto front and the design analysis of the objectives recorded in ``metrics.json``.
    """

    sweep_dir: Path
    jobs: list[Job]
    evaluated: list[Job]  # with eval.json, of the chosen test set
    trained: list[Job]  # complete with evaluation disabled: objectives from metrics.json only
    hparams: list[str]
    objectives: list[str]  # every objective the runs name, the sweep table's columns
    sweep: pd.DataFrame | None  # one row per evaluated or trained run, for a sweep
    optuna: list[str]
    scores: ScoreAnalysis | None = None
    design: design_stats.DesignAnalysis | None = None
    plots: list[Path] = field(default_factory=list)  # filled as write_report saves them

    @property
    def failed(self) -> list[Job]:
        return [job for job in self.jobs if job.status == "failed"]

    @property
    def missing(self) -> list[Job]:
        return [job for job in self.jobs if job.status == "missing"]

    @property
    def other_test_sets(self) -> list[Job]:
        return [job for job in self.jobs if job.status == "evaluated" and job not in self.evaluated]


def select_test_set(evaluated: list[Job], prefix: str | None) -> tuple[list[Job], str]:
    """The evaluated jobs of one test set; mixed sets are refused unless ``prefix`` picks one."""
    groups: dict[str, list[Job]] = {}
    for job in evaluated:
        groups.setdefault(job.test_set, []).append(job)
    if prefix is not None:
        chosen = [sha for sha in groups if sha.startswith(prefix)]
        if len(chosen) != 1:
            raise SftlabError(f"--test-set {prefix} matches {len(chosen)} of the test sets: {describe_groups(groups)}")
        return groups[chosen[0]], chosen[0]
    if len(groups) > 1:
        raise SftlabError(
            f"runs were scored on {len(groups)} different test sets, and mixed test sets are not averaged: "
            f"{describe_groups(groups)}; pick one with --test-set <sha256 prefix>"
        )
    return evaluated, next(iter(groups))


def describe_groups(groups: dict[str, list[Job]]) -> str:
    parts = []
    for sha, jobs in groups.items():
        test_file = (jobs[0].scores or {}).get("test_file", "?")
        parts.append(f"{sha[:12]} ({test_file}: jobs {', '.join(job.name for job in jobs)})")
    return "; ".join(parts)


def choose_baseline(formats: list[str], requested: str | None) -> str:
    if requested is not None:
        if requested not in formats:
            raise SftlabError(f"baseline format {requested!r} has no evaluated run (formats: {', '.join(formats)})")
        return requested
    return DEFAULT_BASELINE if DEFAULT_BASELINE in formats else sorted(formats)[0]


def resamples_of(jobs: list[Job], requested: int | None) -> int:
    """``--resamples``, else the runs' ``eval.bootstrap_resamples``, else sacreBLEU's default for bootstrap."""
    if requested is not None:
        if requested < 1:
            raise SftlabError(f"--resamples must be positive, got {requested}")
        return requested
    values = {node(job.config, "eval.bootstrap_resamples") for job in jobs} - {None}
    return int(max(values)) if values else DEFAULT_RESAMPLES


def check_results(sweep_dir: Path, jobs: list[Job], trained: list[Job]) -> None:
    """Without translation scores, the report needs an objective value of some trained job; else one line that
    names the first failure."""
    if any(objective_value(job, name) is not None for job in trained for name in job.objectives):
        return
    failed = [job for job in jobs if job.status == "failed"]
    first = f"; job {failed[0].name}: {(failed[0].failure or {}).get('message', '?')}" if failed else ""
    without = f"{len(trained)} trained without an objective value, " if trained else ""
    raise SftlabError(
        f"{sweep_dir}: {len(jobs)} runs, none evaluated and none with an objective value in {rundir.METRICS} "
        f"({len(failed)} failed, {without}{len(jobs) - len(failed) - len(trained)} unfinished){first}"
    )


def build_report(
    sweep_dir: Path,
    baseline: str | None = None,
    metric: str = "chrf",
    resamples: int | None = None,
    test_set: str | None = None,
) -> Report:
    if metric not in SCORES:
        raise SftlabError(f"unknown metric {metric!r} (expected one of {', '.join(SCORES)})")
    jobs = find_jobs(sweep_dir)
    evaluated = [job for job in jobs if job.status == "evaluated"]
    trained = [job for job in jobs if job.status == "trained"]
    sha = None
    if evaluated:
        evaluated, sha = select_test_set(evaluated, test_set)
    else:
        check_results(sweep_dir, jobs, trained)
    results = evaluated + trained  # every run with objective values
    hparams = varying_hparams(results)
    names = objectives_of(results)
    # Without scores the sweep table is what the report has to say, so it is always there.
    is_sweep = bool(hparams) or (sweep_dir / rundir.SWEEP_RESULTS).is_file() or len(names) > 1 or not evaluated
    return Report(
        sweep_dir=sweep_dir,
        jobs=jobs,
        evaluated=evaluated,
        trained=trained,
        hparams=hparams,
        objectives=names,
        sweep=sweep_table(results, hparams, names) if is_sweep else None,
        optuna=optuna_summary(sweep_dir),
        scores=None if sha is None else score_analysis(evaluated, sha, hparams, baseline, metric, resamples),
        design=design_of(sweep_dir, results),
    )


def score_analysis(
    evaluated: list[Job], sha: str, hparams: list[str], baseline: str | None, metric: str, resamples: int | None
) -> ScoreAnalysis:
    """The score tables and the paired tests of each format against the baseline."""
    chosen = choose_baseline(sorted({job.format for job in evaluated}), baseline)
    n = resamples_of(evaluated, resamples)
    summary = summarize(run_scores(evaluated, hparams), metric)
    tests, notes = significance(evaluated, hparams, chosen, metric, n, list(dict.fromkeys(summary["system"])))
    return ScoreAnalysis(
        test_set=sha,
        baseline=chosen,
        metric=metric,
        resamples=n,
        summary=summary,
        tests=tests,
        outcomes=verdicts(tests),
        notes=notes,
    )


def design_of(sweep_dir: Path, results: list[Job]) -> design_stats.DesignAnalysis | None:
    """The factorial-design analysis when the multirun is a design with a factor left to estimate, else None."""
    analysis = design_stats.analyse(sweep_dir, results)
    return analysis if analysis is not None and analysis.factors else None
