"""The report as markdown: counts, failed and unfinished runs, score tables, significance in words, the sweep table
with every objective (the Pareto front marked), the plots and a factorial design's statistics."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from sftlab import objectives, rundir
from sftlab.analysis.design_stats import DesignAnalysis, levels_text
from sftlab.analysis.report import Report, ScoreAnalysis
from sftlab.analysis.runs import format_value, missing_reason
from sftlab.analysis.significance import ALPHA
from sftlab.analysis.tables import FRONT, METRIC_LABELS, markdown_table, score_matrix

# The sweeper's own plots, linked when present.
SWEEPER_PLOTS = (rundir.SWEEP_HISTORY_PLOT, rundir.SWEEP_IMPORTANCE_PLOT, rundir.SWEEP_PARETO_PLOT)
NO_SCORES = (
    f"No job has translation scores ({rundir.EVAL}), so the score tables, the significance tests and the "
    f"by-format plot are left out; the objectives below are read from {rundir.METRICS}."
)


def counts_line(report: Report) -> str:
    trained = f"{len(report.trained)} trained with evaluation disabled, " if report.trained else ""
    line = (
        f"{len(report.jobs)} runs found: {len(report.evaluated)} evaluated, {trained}"
        f"{len(report.missing)} unfinished, {len(report.failed)} failed"
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
        parts += ["## Unfinished runs", "", markdown_table(frame), ""]
    if report.other_test_sets:
        names = ", ".join(job.name for job in report.other_test_sets)
        parts += ["## Left out", "", f"Jobs {names}: scored on another test set (see --test-set).", ""]
    return parts


def render_scores(scores: ScoreAnalysis) -> list[str]:
    parts = []
    for name in [scores.metric] + [name for name in objectives.SCORES if name != scores.metric]:
        parts += [
            f"## {METRIC_LABELS[name]} (mean ± std over seeds)",
            "",
            markdown_table(score_matrix(scores.summary, name)),
            "",
        ]
    parts += [
        "Cells are the mean ± sample standard deviation (ddof=1) over a system's runs (seeds); a system with one "
        f"run shows the mean alone (std undefined: blank in {rundir.REPORT_CSV}). **Bold** is the highest mean per "
        "column (none when all tie), which by itself is not a claim that it is better: see the significance "
        "section. `macro` is the mean over directions of each run's scores.",
        "",
    ]
    return parts


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


def render_significance(scores: ScoreAnalysis, formats: set[str]) -> list[str]:
    """The paired tests against the baseline; ``formats`` are those evaluated."""
    label = METRIC_LABELS[scores.metric]
    parts = [f"## Significance against `{scores.baseline}` ({label}, paired bootstrap)", ""]
    if formats == {scores.baseline}:
        return parts + [f"Only one prompt format (`{scores.baseline}`) was evaluated: nothing to compare.", ""]
    parts += [
        f"sacreBLEU's paired bootstrap resampling ({scores.resamples} resamples, per direction) of each format "
        f"against `{scores.baseline}` at the same hyperparameters and the same seed, on the same test pairs from "
        f"{rundir.PREDICTIONS}. A format is called better or worse only when every paired seed gives p < {ALPHA} "
        f"with the same sign; its p is the largest per-seed p. {len(scores.tests)} tests, no correction for "
        "multiple comparisons.",
        "",
    ]
    if not scores.outcomes.empty:
        frame = scores.outcomes.assign(delta=scores.outcomes["delta"].map(lambda d: f"{d:+.2f}"))
        frame = frame[["system", "direction", "seeds", "delta", "p_values", "verdict"]]
        frame.columns = ["format", "direction", "seeds", f"Δ {label} (mean)", "p per seed", "verdict"]
        parts += [markdown_table(frame), ""]
        parts += [f"- {sentence(row, scores.metric)}" for _, row in scores.outcomes.iterrows()]
        parts.append("")
    parts += [f"- {note}" for note in scores.notes]
    return parts + ([""] if scores.notes else [])


def objectives_line(report: Report) -> str:
    """The objectives in their directions, and for several of them which runs form the Pareto front."""
    named = ", ".join(f"`{name}` ({objectives.direction(name)}d)" for name in report.objectives)
    if report.sweep is None or FRONT not in report.sweep:
        return f"Objective: {named}; best first."
    front = report.sweep.loc[report.sweep[FRONT], "job"].tolist()
    return (
        f"Objectives: {named}; sorted by the first. `{FRONT}` marks the Pareto front, the runs that no other run "
        f"beats on every objective: {len(front)} of {len(report.sweep)} (jobs {', '.join(front) or 'none'})."
    )


def render_sweep(report: Report) -> list[str]:
    if report.sweep is None:
        return []
    parts = ["## Sweep", ""]
    if report.hparams:
        parts += [f"Varying hyperparameters: {', '.join(f'`{key}`' for key in report.hparams)}.", ""]
    parts += [f"- {line}" for line in report.optuna] + ([""] if report.optuna else [])
    return parts + [objectives_line(report), "", markdown_table(sweep_cells(report.sweep, report.objectives)), ""]


def sweep_cells(sweep: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    """The sweep table as text: objectives as overrides write numbers (blank when not recorded), the front ``yes``."""
    table = sweep.copy()
    for name in names:
        table[name] = table[name].map(lambda value: "" if pd.isna(value) else format_value(float(value)))
    if FRONT in table:
        table[FRONT] = table[FRONT].map(lambda on_front: "yes" if on_front else "")
    return table.astype(str)


def render_plots(report: Report) -> list[str]:
    sweeper = [report.sweep_dir / name for name in SWEEPER_PLOTS if (report.sweep_dir / name).is_file()]
    plots = [*report.plots, *sweeper]
    if not plots:
        return []
    return ["## Plots", ""] + [f"![{plot.stem}]({plot.name})" for plot in plots] + [""]


def scores_header(report: Report) -> str:
    """The test set and the baseline, or why there are no score tables."""
    if report.scores is None:
        return NO_SCORES
    first = report.evaluated[0].scores or {}
    test_file, counts = first.get("test_file", "?"), first.get("counts", {})
    return (
        f"Test set: `{test_file}`, sha256 `{report.scores.test_set[:16]}`, {counts.get('pairs', '?')} pairs. "
        f"Baseline format: `{report.scores.baseline}`. Ranked by macro {METRIC_LABELS[report.scores.metric]}."
    )


def render_markdown(report: Report) -> str:
    parts = [f"# Report: {report.sweep_dir}", "", counts_line(report), "", scores_header(report), ""]
    parts += render_jobs_sections(report)
    if report.scores is not None:
        parts += render_scores(report.scores)
        parts += render_significance(report.scores, {job.format for job in report.evaluated})
    parts += render_sweep(report)
    parts += render_plots(report)
    if report.design is not None:
        parts += render_design(report.design)
    return "\n".join(parts)


# ---------------------------------------------------------------------------------------------------- designs


def fmt(value: Any, digits: int = 3) -> str:
    """A design table's cell: floats to ``digits`` places, NaN blank."""
    if isinstance(value, (float, np.floating)):
        return "" if math.isnan(value) else f"{value:.{digits}f}"
    return str(value)


def design_header(analysis: DesignAnalysis) -> list[str]:
    """What the design is: its rows, resolution and alias chains, or the switches a hand-made multirun varied."""
    if analysis.design is None:
        return [
            f"- no design.json: factors are the varying `{analysis.prefix}` switches: {', '.join(analysis.factors)}"
        ]
    described = analysis.design.describe()
    parts = [f"- {line}" for line in described if not line.startswith("  ")]
    chains = [line.strip() for line in described if line.startswith("  ")]
    if chains:
        parts += ["", "Alias chains (main effects and two-factor interactions, up to three-factor terms):", ""]
        parts += [f"- `{line}`" for line in chains]
    return parts


def effects_table(analysis: DesignAnalysis) -> pd.DataFrame:
    effects = analysis.effects.assign(
        ci=[
            "" if math.isnan(low) else f"[{low:+.3f}, {high:+.3f}]"
            for low, high in zip(analysis.effects["ci_low"], analysis.effects["ci_high"], strict=True)
        ],
        best_level=analysis.effects["best_level"].map(lambda v: str(v).lower()),
    )[["factor", "mean_false", "mean_true", "effect", "ci", "best_level"]]
    effects.columns = ["factor", "mean at false", "mean at true", "effect (true - false)", "95% CI", "best level"]
    return effects.map(fmt)


def render_design(analysis: DesignAnalysis) -> list[str]:
    """The factorial-design section: the design, main effects, ANOVA, S/N and the predicted best combination."""
    a = analysis
    parts = ["## Factorial design", "", *design_header(a), ""]
    parts += [
        f"Objective `{a.objective}` ({a.direction}d), {len(a.runs)} runs, grand mean {fmt(a.runs['y'].mean())}.",
        "",
    ]
    parts += [f"- {note}" for note in a.notes] + ([""] if a.notes else [])
    parts += ["### Main effects", "", markdown_table(effects_table(a)), ""]
    parts += ["### ANOVA (type II)", "", markdown_table(a.anova.map(fmt)), ""]
    sn = a.sn_effects.assign(best_level=a.sn_effects["best_level"].map(lambda v: str(v).lower()))
    kind = "larger" if a.sn_maximize else "smaller"
    parts += [f"### Signal-to-noise ({kind}-the-better, dB, per row: {a.sn_source})", ""]
    parts += [markdown_table(sn.map(fmt)), ""]
    interval = "" if a.interval is None else f" ± {a.interval:.3f} (95%, one confirmation run)"
    parts += [
        "### Predicted best combination (additive model)",
        "",
        f"`{levels_text(a.best)}`: predicted {a.objective} {a.predicted:.3f}{interval}, S/N {a.predicted_sn:.2f} dB.",
        f"Confirm it: `python -m sftlab.design confirm {a.sweep_dir}` (add `--run` to train it and compare).",
        "",
        f"![{rundir.DESIGN_EFFECTS_PLOT.removesuffix('.png')}]({rundir.DESIGN_EFFECTS_PLOT})",
        "",
    ]
    return parts
