"""The report of one multirun: compare the prompt formats (and sweep trials), from the job dirs on disk.

    python -m sftlab.report multirun/2026-11-26/10-00-00
    python -m sftlab.report multirun/2026-11-26/10-00-00 --baseline alpaca --metric bleu --resamples 2000

Reads the job dirs (``0/``, ``1/``, ...) from disk only: ``.hydra/config.yaml``, ``eval.json``,
``predictions.jsonl``, ``metrics.json``, ``failure.json`` and a sweep's ``optimization_results.yaml``. It imports
no torch and no model code, so a report runs on a laptop. It writes into the multirun dir: ``report.md``,
``report.csv`` (scores per system x direction), ``significance.csv`` (one row per paired test),
``<metric>_by_format.png`` and, for a sweep, ``objective_vs_<param>.png`` per varying hyperparameter.

Why it is written this way:

- A *system* is a prompt format plus the values of every hyperparameter that varies across the evaluated runs
  (seed excluded). With a plain ``prompt=a,b,c seed=1,2,3`` multirun the systems are just the formats; in a sweep,
  runs with different learning rates are never averaged together as if they were seeds.
- Scores are mean ± sample standard deviation (ddof=1) over a system's runs (its seeds). With one run the std is
  undefined: the CSV leaves it blank and the markdown shows the mean alone. Bold marks the highest mean per
  column (ties all bold; none when every system ties), which is not a claim of significance.
- Significance is sacreBLEU's own paired bootstrap (``PairedTest``, ``test_type="bs"``), on the per-pair
  hypotheses in ``predictions.jsonl``, per direction, for the chosen ``--metric``. Each system is paired with the
  baseline format at the same hyperparameters and the *same seed* (same data order and initialisation), so every
  seed gives its own test and p-value. Seeds are not pooled: pooling would resample the same source sentence
  several times as if independent and understate the variance. A system is called better (or worse) than the
  baseline in a direction only when *every* paired seed is significant (p < 0.05) with the same sign: an
  intersection-union test, whose p-value is the largest per-seed p-value. Anything else is reported in words as
  "not significantly different" (or "seeds disagree"). No correction for testing many formats x directions is
  applied; the report says how many tests were run.
- sacreBLEU's paired bootstrap returns its floor p = 1/(n+1) when both systems score exactly the same (every
  resampled difference is 0, and it counts none as "at least as large"). An observed difference of zero is no
  evidence of a difference, so such a comparison is given p = 1.
- Runs scored on different test sets (``test_set_sha256``) are refused, naming the groups: their scores are not
  comparable, so they are never averaged. ``--test-set PREFIX`` picks one group.
- Failed jobs (``failure.json``) and jobs without ``eval.json`` are listed with their reason; they are never dropped
  silently, and the rest is still reported.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from sftlab import rundir
from sftlab.analysis.plots import plot_by_format, plot_name, plot_objective
from sftlab.analysis.runs import Job, find_jobs, lookup, missing_reason, objective_of, read_yaml
from sftlab.analysis.significance import ALPHA, significance, verdicts
from sftlab.analysis.systems import format_value, system_of, varying_hparams
from sftlab.analysis.tables import METRIC_LABELS, markdown_table
from sftlab.errors import SftlabError
from sftlab.objectives import SCORES
from sftlab.objectives import direction as objective_direction

DEFAULT_BASELINE = "reasoning_tags"
DEFAULT_RESAMPLES = 1000
# Checked for variation in every multirun; keys a job overrode on the command line are checked too.

OPTUNA_RESULTS = rundir.SWEEP_RESULTS
OPTUNA_TRIALS = rundir.SWEEP_TRIALS
OPTUNA_PLOTS = (rundir.SWEEP_HISTORY_PLOT, rundir.SWEEP_IMPORTANCE_PLOT)  # the sweeper's own, linked when present
REPORT_MD = "report.md"
REPORT_CSV = "report.csv"
SIGNIFICANCE_CSV = "significance.csv"


# ---------------------------------------------------------------------------------------------------- reading jobs


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


# ---------------------------------------------------------------------------------------------------- systems


def choose_baseline(formats: list[str], requested: str | None) -> str:
    if requested is not None:
        if requested not in formats:
            raise SftlabError(f"baseline format {requested!r} has no evaluated run (formats: {', '.join(formats)})")
        return requested
    return DEFAULT_BASELINE if DEFAULT_BASELINE in formats else sorted(formats)[0]


# ---------------------------------------------------------------------------------------------------- score tables


def run_scores(jobs: list[Job], hparams: list[str]) -> pd.DataFrame:
    """One row per evaluated job x direction (and ``macro``): the scores from eval.json."""
    rows = []
    for job in jobs:
        assert job.scores is not None
        entries = {**job.scores["directions"], "macro": job.scores["macro"]}
        for direction, entry in entries.items():
            row = {"job": job.name, "system": system_of(job, hparams), "format": job.format, "seed": job.seed}
            row.update({key: lookup(job.config, key) for key in hparams})
            row.update({"direction": direction, **{name: float(entry[name]) for name in SCORES}})
            rows.append(row)
    return pd.DataFrame(rows)


def summarize(scores: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Mean and sample std (ddof=1; NaN for one run) over a system's runs, per direction; best systems first."""
    keys = ["system", "format", "direction"]
    grouped = scores.groupby(keys, sort=False)
    summary = grouped[list(SCORES)].agg(["mean", "std"])
    summary.columns = [f"{name}_{stat}" for name, stat in summary.columns]
    summary.insert(0, "runs", grouped.size())
    summary.insert(1, "seeds", grouped["seed"].agg(lambda seeds: " ".join(format_value(s) for s in seeds)))
    summary = summary.reset_index()
    macro = summary[summary["direction"] == "macro"].set_index("system")[f"{metric}_mean"]
    order = sorted(macro.index, key=lambda system: (-macro[system], system))
    directions = [d for d in dict.fromkeys(scores["direction"]) if d != "macro"] + ["macro"]
    summary["system"] = pd.Categorical(summary["system"], order, ordered=True)
    summary["direction"] = pd.Categorical(summary["direction"], directions, ordered=True)
    summary = summary.sort_values(["system", "direction"]).reset_index(drop=True)
    summary["system"] = summary["system"].astype(str)
    summary["direction"] = summary["direction"].astype(str)
    for name in SCORES:
        summary[f"{name}_best"] = best_in_direction(summary, f"{name}_mean")
    return summary


def best_in_direction(summary: pd.DataFrame, column: str) -> pd.Series:
    """True for the highest value per direction; ties all count, but when every system ties none is best."""
    by_direction = summary.groupby("direction")[column]
    top = summary[column] == by_direction.transform("max")
    return top & (top.groupby(summary["direction"]).transform("sum") < by_direction.transform("size"))


def cell(mean: float, std: float, best: bool) -> str:
    text = f"{mean:.2f}" if math.isnan(std) else f"{mean:.2f} ± {std:.2f}"
    return f"**{text}**" if best else text


def score_matrix(summary: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Systems x directions, each cell ``mean ± std`` with the best per column in bold."""
    frame = summary.assign(
        cell=[cell(m, s, b) for m, s, b in summary[[f"{metric}_mean", f"{metric}_std", f"{metric}_best"]].values]
    )
    matrix = frame.pivot(index="system", columns="direction", values="cell")
    matrix = matrix.loc[list(dict.fromkeys(summary["system"])), list(dict.fromkeys(summary["direction"]))]
    runs = summary.drop_duplicates("system").set_index("system")["runs"]
    matrix.insert(0, "runs", runs.loc[matrix.index].astype(str))
    return matrix.reset_index()


# ---------------------------------------------------------------------------------------------------- significance


def sentence(row: pd.Series, metric: str) -> str:
    """A verdict as a sentence, so a difference that is not significant is said in words."""
    label = METRIC_LABELS[metric]
    where = f"{row['system']}, {row['direction']}"
    seeds = f"seed {row['seeds']}" if " " not in row["seeds"] else f"seeds {row['seeds']}"
    if row["verdict"] in ("better", "worse"):
        return (
            f"{where}: significantly {row['verdict']} than {row['baseline']} on {label} "
            f"(Δ {row['delta']:+.2f}, p < {ALPHA} for every paired seed, largest p = {row['p']:.3g}; {seeds})."
        )
    if row["verdict"] == "seeds disagree":
        return (
            f"{where}: no consistent difference from {row['baseline']} on {label}: every seed is significant but "
            f"the seeds disagree on the sign (p = {row['p_values']}; {seeds})."
        )
    return (
        f"{where}: NOT significantly different from {row['baseline']} on {label} "
        f"(Δ {row['delta']:+.2f}, p = {row['p_values']}; {seeds}; a difference needs p < {ALPHA} in every seed)."
    )


# ---------------------------------------------------------------------------------------------------- sweeps


def sweep_table(jobs: list[Job], hparams: list[str]) -> pd.DataFrame:
    rows = []
    for job in jobs:
        objective, value = objective_of(job)
        row = {"job": job.name, "format": job.format, "seed": job.seed}
        row.update({key: lookup(job.config, key) for key in hparams})
        row.update({"objective": objective, "value": value})
        rows.append(row)
    return pd.DataFrame(rows)


def optuna_summary(sweep_dir: Path) -> list[str]:
    """What the Optuna sweeper wrote next to the jobs (optimization_results.yaml, trials.csv), in a few lines."""
    lines: list[str] = []
    results_path = sweep_dir / OPTUNA_RESULTS
    results: dict[str, Any] = {}
    if results_path.is_file():
        try:
            results = read_yaml(results_path) or {}
        except (OSError, yaml.YAMLError) as error:
            return [f"{OPTUNA_RESULTS} unreadable ({type(error).__name__})"]
        if results.get("best_value") is None:
            lines.append(f"Optuna: no complete trial ({OPTUNA_RESULTS} has no best value)")
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
    trials_path = sweep_dir / OPTUNA_TRIALS
    if trials_path.is_file() and not isinstance(results.get("trials"), dict):
        try:
            trials = pd.read_csv(trials_path)
        except (OSError, ValueError) as error:
            return [*lines, f"{OPTUNA_TRIALS} unreadable ({type(error).__name__})"]
        states = Counter(trials["state"]) if "state" in trials else {}
        detail = f" ({', '.join(f'{state} {count}' for state, count in states.items())})" if states else ""
        lines.append(f"{OPTUNA_TRIALS}: {len(trials)} trials{detail}")
    return lines


# ---------------------------------------------------------------------------------------------------- plots


# ---------------------------------------------------------------------------------------------------- markdown


@dataclass
class Report:
    """Everything the report says, gathered before anything is written."""

    sweep_dir: Path
    jobs: list[Job]
    evaluated: list[Job]
    test_set: str
    hparams: list[str]
    baseline: str
    metric: str
    resamples: int
    summary: pd.DataFrame
    tests: pd.DataFrame
    outcomes: pd.DataFrame
    test_notes: list[str]
    sweep: pd.DataFrame | None
    optuna: list[str]
    plots: list[Path] = field(default_factory=list)

    @property
    def failed(self) -> list[Job]:
        return [job for job in self.jobs if job.status == "failed"]

    @property
    def missing(self) -> list[Job]:
        return [job for job in self.jobs if job.status == "missing"]

    @property
    def other_test_sets(self) -> list[Job]:
        return [job for job in self.jobs if job.status == "evaluated" and job not in self.evaluated]


def counts_line(report: Report) -> str:
    line = (
        f"{len(report.jobs)} runs found: {len(report.evaluated)} evaluated, "
        f"{len(report.missing)} without {rundir.EVAL} (unfinished), {len(report.failed)} failed"
    )
    if report.other_test_sets:
        line += f", {len(report.other_test_sets)} on another test set (left out by --test-set)"
    return line + "."


def render_jobs_sections(report: Report) -> list[str]:
    parts = []
    if report.failed:
        frame = pd.DataFrame(
            [
                {
                    "job": job.name,
                    "format": job.format,
                    "seed": job.seed,
                    "error": (job.failure or {}).get("type", "?"),
                    "message": str((job.failure or {}).get("message", "")).splitlines()[0][:300],
                    "note": f"has {rundir.EVAL}, not used" if job.scores is not None else "",
                }
                for job in report.failed
            ]
        )
        parts += ["## Failed runs", "", markdown_table(frame), ""]
    if report.missing:
        frame = pd.DataFrame(
            [
                {"job": job.name, "format": job.format, "seed": job.seed, "reason": missing_reason(job)}
                for job in report.missing
            ]
        )
        parts += [f"## Runs without {rundir.EVAL}", "", markdown_table(frame), ""]
    if report.other_test_sets:
        names = ", ".join(job.name for job in report.other_test_sets)
        parts += ["## Left out", "", f"Jobs {names}: scored on another test set (see --test-set).", ""]
    return parts


def render_scores(report: Report) -> list[str]:
    parts = []
    metrics = [report.metric] + [name for name in SCORES if name != report.metric]
    for name in metrics:
        parts += [
            f"## {METRIC_LABELS[name]} (mean ± std over seeds)",
            "",
            markdown_table(score_matrix(report.summary, name)),
            "",
        ]
    parts += [
        "Cells are the mean ± sample standard deviation (ddof=1) over a system's runs (seeds); a system with one "
        "run shows the mean alone (std undefined: blank in report.csv). **Bold** is the highest mean per column "
        "(none when all tie), which by itself is not a claim that it is better: see the significance section. "
        "`macro` is the mean over directions of each run's scores.",
        "",
    ]
    return parts


def render_significance(report: Report) -> list[str]:
    label = METRIC_LABELS[report.metric]
    parts = [f"## Significance against `{report.baseline}` ({label}, paired bootstrap)", ""]
    systems = {job.format for job in report.evaluated}
    if systems == {report.baseline}:
        return parts + [f"Only one prompt format (`{report.baseline}`) was evaluated: nothing to compare.", ""]
    parts += [
        f"sacreBLEU's paired bootstrap resampling ({report.resamples} resamples, per direction) of each format "
        f"against `{report.baseline}` at the same hyperparameters and the same seed, on the same test pairs from "
        f"{rundir.PREDICTIONS}. A format is called better or worse only when every paired seed gives p < {ALPHA} "
        f"with the same sign; its p is the largest per-seed p. {len(report.tests)} tests, no correction for "
        "multiple comparisons.",
        "",
    ]
    if not report.outcomes.empty:
        frame = report.outcomes.assign(delta=report.outcomes["delta"].map(lambda d: f"{d:+.2f}"))
        frame = frame[["system", "direction", "seeds", "delta", "p_values", "verdict"]]
        frame.columns = ["format", "direction", "seeds", f"Δ {label} (mean)", "p per seed", "verdict"]
        parts += [markdown_table(frame), ""]
        parts += [f"- {sentence(row, report.metric)}" for _, row in report.outcomes.iterrows()]
        parts.append("")
    parts += [f"- {note}" for note in report.test_notes]
    return parts + ([""] if report.test_notes else [])


def render_sweep(report: Report) -> list[str]:
    if report.sweep is None:
        return []
    parts = ["## Sweep", ""]
    if report.hparams:
        parts += [f"Varying hyperparameters: {', '.join(f'`{key}`' for key in report.hparams)}.", ""]
    parts += [f"- {line}" for line in report.optuna] + ([""] if report.optuna else [])
    objective = report.sweep["objective"].iloc[0]
    ascending = objective_direction(objective) == "minimize"
    table = report.sweep.sort_values("value", ascending=ascending, na_position="last")
    parts += [markdown_table(table), ""]
    return parts


def render_markdown(report: Report) -> str:
    scores = report.evaluated[0].scores or {}
    test_file, counts = scores.get("test_file", "?"), scores.get("counts", {})
    parts = [
        f"# Report: {report.sweep_dir}",
        "",
        counts_line(report),
        "",
        f"Test set: `{test_file}`, sha256 `{report.test_set[:16]}`, {counts.get('pairs', '?')} pairs. "
        f"Baseline format: `{report.baseline}`. Ranked by macro {METRIC_LABELS[report.metric]}.",
        "",
    ]
    parts += render_jobs_sections(report)
    parts += render_scores(report)
    parts += render_significance(report)
    parts += render_sweep(report)
    plots = [*report.plots, *(report.sweep_dir / name for name in OPTUNA_PLOTS if (report.sweep_dir / name).is_file())]
    if plots:
        parts += ["## Plots", ""] + [f"![{plot.stem}]({plot.name})" for plot in plots] + [""]
    return "\n".join(parts)


def report_csv(report: Report) -> pd.DataFrame:
    """report.csv: one row per system x direction; std blank with one run; the test outcome of ``--metric``."""
    frame = report.summary.copy()
    outcomes = report.outcomes.rename(columns={"p": f"{report.metric}_p", "verdict": f"{report.metric}_vs_baseline"})
    columns = ["system", "direction", f"{report.metric}_p", f"{report.metric}_vs_baseline"]
    if not outcomes.empty:
        frame = frame.merge(outcomes[columns], on=["system", "direction"], how="left")
    frame.loc[frame["format"] == report.baseline, f"{report.metric}_vs_baseline"] = "baseline"
    return frame


# ---------------------------------------------------------------------------------------------------- building


def resamples_of(jobs: list[Job], requested: int | None) -> int:
    """``--resamples``, else the runs' ``eval.bootstrap_resamples``, else sacreBLEU's default for bootstrap."""
    if requested is not None:
        if requested < 1:
            raise SftlabError(f"--resamples must be positive, got {requested}")
        return requested
    values = {lookup(job.config, "eval.bootstrap_resamples") for job in jobs} - {None}
    return int(max(values)) if values else DEFAULT_RESAMPLES


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
    if not evaluated:
        failed = [job for job in jobs if job.status == "failed"]
        first = f"; job {failed[0].name}: {failed[0].failure.get('message', '?')}" if failed else ""
        raise SftlabError(
            f"{sweep_dir}: {len(jobs)} runs, none evaluated ({len(failed)} failed, "
            f"{len(jobs) - len(failed)} without {rundir.EVAL}){first}"
        )
    evaluated, sha = select_test_set(evaluated, test_set)
    hparams = varying_hparams(evaluated)
    chosen = choose_baseline(sorted({job.format for job in evaluated}), baseline)
    n = resamples_of(evaluated, resamples)
    summary = summarize(run_scores(evaluated, hparams), metric)
    order = list(dict.fromkeys(summary["system"]))
    tests, notes = significance(evaluated, hparams, chosen, metric, n, order)
    is_sweep = bool(hparams) or (sweep_dir / OPTUNA_RESULTS).is_file()
    return Report(
        sweep_dir=sweep_dir,
        jobs=jobs,
        evaluated=evaluated,
        test_set=sha,
        hparams=hparams,
        baseline=chosen,
        metric=metric,
        resamples=n,
        summary=summary,
        tests=tests,
        outcomes=verdicts(tests),
        test_notes=notes,
        sweep=sweep_table(evaluated, hparams) if is_sweep else None,
        optuna=optuna_summary(sweep_dir),
    )


def write_report(report: Report) -> list[Path]:
    """Plots first (the markdown links them), then report.md, report.csv and significance.csv."""
    out = report.sweep_dir
    report.plots = [plot_by_format(report.summary, report.metric, out / f"{report.metric}_by_format.png")]
    if report.sweep is not None:
        plottable = report.sweep.dropna(subset=["value"])
        if plottable["objective"].nunique() == 1:
            for param in report.hparams:
                report.plots.append(plot_objective(plottable.reset_index(drop=True), param, out / plot_name(param)))
    design_lines, design_files = design_section(report)
    (out / REPORT_MD).write_text(render_markdown(report) + "\n".join(design_lines), encoding="utf-8")
    report_csv(report).to_csv(out / REPORT_CSV, index=False)
    report.tests.to_csv(out / SIGNIFICANCE_CSV, index=False)
    return [out / REPORT_MD, out / REPORT_CSV, out / SIGNIFICANCE_CSV, *report.plots, *design_files]


def design_section(report: Report) -> tuple[list[str], list[Path]]:
    """The factorial-design analysis (``sftlab.design_analysis``) when the multirun is a design, else nothing."""
    from sftlab.analysis.design_stats import report_section

    return report_section(report.sweep_dir, report.evaluated)
