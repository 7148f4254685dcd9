"""Writes a gathered report into its multirun dir: the plots first (the markdown links them), then ``report.md``,
``report.csv`` and ``significance.csv`` (when there are translation scores) and, for a factorial design, its tables.
Every file name is the run-dir contract's (``sftlab.rundir``)."""

from __future__ import annotations

from pathlib import Path

from sftlab import rundir
from sftlab.analysis.design_stats import DesignAnalysis
from sftlab.analysis.plots import plot_by_format, plot_main_effects, plot_name, plot_objective, plot_pareto
from sftlab.analysis.render import render_markdown
from sftlab.analysis.report import Report
from sftlab.analysis.tables import report_csv


def write_plots(report: Report) -> list[Path]:
    """The score per format; for a sweep, the objectives against each varying parameter and the Pareto front."""
    out = report.sweep_dir
    plots = []
    if report.scores is not None:
        plots.append(out / rundir.REPORT_FORMAT_PLOT.format(metric=report.scores.metric))
        plot_by_format(report.scores.summary, report.scores.metric, plots[-1])
    if report.sweep is None:
        return plots
    for param in report.hparams:
        plots.append(out / plot_name(param))
        plot_objective(report.sweep, param, report.objectives, plots[-1])
    if len(report.objectives) >= 2:
        plots.append(out / rundir.REPORT_PARETO_PLOT)
        plot_pareto(report.sweep, report.objectives, plots[-1])
    return plots


def write_design(analysis: DesignAnalysis) -> list[Path]:
    """A factorial design's effects, ANOVA and S/N tables and its main-effects plot, into its sweep dir."""
    out = analysis.sweep_dir
    tables = {
        rundir.DESIGN_EFFECTS_CSV: analysis.effects,
        rundir.DESIGN_ANOVA_CSV: analysis.anova,
        rundir.DESIGN_SN_CSV: analysis.sn,
    }
    for name, table in tables.items():
        table.to_csv(out / name, index=False)
    plot_main_effects(analysis, out / rundir.DESIGN_EFFECTS_PLOT)
    return [*(out / name for name in tables), out / rundir.DESIGN_EFFECTS_PLOT]


def write_report(report: Report) -> list[Path]:
    """Every file of the report; returns their paths."""
    out = report.sweep_dir
    report.plots = write_plots(report)
    design_files = write_design(report.design) if report.design is not None else []
    (out / rundir.REPORT_MD).write_text(render_markdown(report), encoding="utf-8")
    written = [out / rundir.REPORT_MD]
    if report.scores is not None:
        scores = report.scores
        report_csv(scores.summary, scores.outcomes, scores.metric, scores.baseline).to_csv(
            out / rundir.REPORT_CSV, index=False
        )
        scores.tests.to_csv(out / rundir.SIGNIFICANCE_CSV, index=False)
        written += [out / rundir.REPORT_CSV, out / rundir.SIGNIFICANCE_CSV]
    return [*written, *report.plots, *design_files]
