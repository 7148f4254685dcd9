"""The report's figures: a score per format and direction, the objectives against each varying parameter, the
Pareto front of the first two objectives, and a factorial design's main effects.

Every figure uses matplotlib's constrained layout with its legend placed *outside* the axes but inside the figure
(``loc="outside ..."``), so nothing is cut off when it is saved; long tick and legend labels are wrapped, and tick
labels rotated when they would collide. Each function saves its figure and returns it (closed), so a caller can
check where its parts landed.
"""

from __future__ import annotations

import math
import re
import textwrap
from pathlib import Path
from typing import Any

import pandas as pd

from sftlab import objectives, rundir
from sftlab.analysis.design_stats import DesignAnalysis
from sftlab.analysis.tables import FRONT, METRIC_LABELS

LEGEND_WIDTH = 32  # characters per line of a legend entry
TICK_WIDTH = 16  # characters per line of a tick label
DPI = 120


def pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def wrap(label: Any, width: int) -> str:
    """A label broken into lines of ``width`` characters (at spaces where it can)."""
    return "\n".join(textwrap.wrap(str(label), width)) or str(label)


def set_tick_labels(ax: Any, labels: list[str]) -> None:
    """Category labels on the x axis: wrapped, and rotated when there are many or they are long."""
    wrapped = [wrap(label, TICK_WIDTH) for label in labels]
    crowded = len(labels) > 4 or any(len(label) > TICK_WIDTH for label in labels)
    ax.set_xticks(range(len(labels)), wrapped, rotation=30 if crowded else 0, ha="right" if crowded else "center")


def figure(width: float, height: float) -> tuple[Any, Any]:
    return pyplot().subplots(figsize=(width, height), layout="constrained")


def outside_legend(fig: Any, ax: Any) -> None:
    """The axes' legend to the right of them, inside the figure (constrained layout makes room for it)."""
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, [wrap(label, LEGEND_WIDTH) for label in labels], loc="outside right upper", fontsize="small")


def save(fig: Any, path: Path) -> Any:
    fig.savefig(path, dpi=DPI)
    pyplot().close(fig)
    return fig


def plot_by_format(summary: pd.DataFrame, metric: str, path: Path) -> Any:
    """Grouped bars: one group per direction (and macro), one bar per system, error bars = std over seeds."""
    systems = list(dict.fromkeys(summary["system"]))
    directions = list(dict.fromkeys(summary["direction"]))
    width = 0.8 / len(systems)
    legend_lines = sum(len(wrap(system, LEGEND_WIDTH).splitlines()) for system in systems)
    fig, ax = figure(max(6.0, 1.5 * len(directions)) + 2.5, max(4.5, 0.22 * legend_lines + 1))
    for index, system in enumerate(systems):
        rows = summary[summary["system"] == system].set_index("direction").reindex(directions)
        positions = [d + (index - (len(systems) - 1) / 2) * width for d in range(len(directions))]
        std = rows[f"{metric}_std"]
        yerr = std.fillna(0) if std.notna().any() else None  # one run: no error bar at all
        ax.bar(positions, rows[f"{metric}_mean"], width, yerr=yerr, capsize=3, label=system)
    set_tick_labels(ax, directions)
    ax.set_ylabel(f"{METRIC_LABELS[metric]} (mean ± std over seeds)")
    ax.set_title(f"{METRIC_LABELS[metric]} by prompt format")
    outside_legend(fig, ax)
    return save(fig, path)


def axis_values(values: pd.Series) -> tuple[pd.Series, list[str] | None]:
    """Positions on the x axis: the numbers themselves, or category indexes and their labels."""
    numbers = pd.to_numeric(values, errors="coerce")
    if numbers.notna().all():
        return numbers.astype(float), None
    categories = sorted({str(value) for value in values})
    return values.map(lambda value: float(categories.index(str(value)))), categories


def plot_objective(table: pd.DataFrame, param: str, names: list[str], path: Path) -> Any:
    """Every objective of the evaluated jobs against one parameter (a panel each), coloured by prompt format."""
    x, categories = axis_values(table[param])
    fig, axes = pyplot().subplots(
        len(names), 1, figsize=(7.5, 1.5 + 2.5 * len(names)), sharex=True, squeeze=False, layout="constrained"
    )
    for ax, name in zip(axes[:, 0], names, strict=True):
        plottable = table.assign(x=x).dropna(subset=[name])
        for prompt_format, group in plottable.groupby("format"):
            ax.scatter(group["x"], group[name], label=prompt_format, alpha=0.8)
        if not plottable.empty:
            best = plottable[name].idxmin() if objectives.direction(name) == "minimize" else plottable[name].idxmax()
            ax.scatter([x[best]], [plottable[name][best]], s=160, facecolors="none", edgecolors="black", label="best")
        ax.set_ylabel(f"{name} ({objectives.direction(name)}d)")
    bottom = axes[-1, 0]
    if categories is not None:
        set_tick_labels(bottom, categories)
    elif (x > 0).all() and x.max() / x.min() >= 10:  # learning rates and the like: spread over decades
        bottom.set_xscale("log")
    bottom.set_xlabel(param)
    fig.suptitle(f"{', '.join(names)} vs {param}")
    outside_legend(fig, axes[0, 0])
    return save(fig, path)


def plot_pareto(table: pd.DataFrame, names: list[str], path: Path) -> Any:
    """The first two objectives of every run, the Pareto front's runs marked and joined as a staircase."""
    first, second = names[:2]
    runs = table.dropna(subset=[first, second])
    front = runs[runs[FRONT]].sort_values(first)
    fig, ax = figure(8.0, 5.0)
    ax.scatter(runs[first], runs[second], color="tab:blue", alpha=0.6, label="run")
    ax.scatter(front[first], front[second], color="tab:red", zorder=3, label="Pareto front")
    ax.plot(front[first], front[second], color="tab:red", alpha=0.6)
    for row in front.itertuples():
        ax.annotate(f"job {row.job}", (getattr(row, first), getattr(row, second)), fontsize="x-small")
    ax.set_xlabel(f"{first} ({objectives.direction(first)}d)")
    ax.set_ylabel(f"{second} ({objectives.direction(second)}d)")
    ax.set_title(f"Pareto front: {first} vs {second}" + (f" (of {len(names)} objectives)" if len(names) > 2 else ""))
    outside_legend(fig, ax)
    return save(fig, path)


def plot_main_effects(analysis: DesignAnalysis, path: Path) -> Any:
    """One panel per factor: the mean objective at ``false`` and at ``true``, the grand mean dashed."""
    factors = list(analysis.effects["factor"])
    cols = min(4, len(factors))
    rows = math.ceil(len(factors) / cols)
    fig, axes = pyplot().subplots(
        rows, cols, figsize=(2.6 * cols, 2.4 * rows + 0.4), sharey=True, squeeze=False, layout="constrained"
    )
    grand = analysis.runs["y"].mean()
    for ax, row in zip(axes.flat, analysis.effects.itertuples(), strict=False):
        ax.plot([0, 1], [row.mean_false, row.mean_true], marker="o")
        ax.axhline(grand, linestyle="--", linewidth=0.8, color="grey")
        ax.set_xticks([0, 1], ["false", "true"])
        ax.set_title(wrap(row.factor, TICK_WIDTH), fontsize=9)
    for ax in list(axes.flat)[len(factors) :]:
        ax.axis("off")
    for ax in axes[:, 0]:
        ax.set_ylabel(f"mean {analysis.objective}")
    fig.suptitle(f"Main effects ({analysis.design.name if analysis.design else 'prompt components'})")
    return save(fig, path)


def plot_name(param: str) -> str:
    return rundir.REPORT_OBJECTIVE_PLOT.format(param=re.sub(r"[^A-Za-z0-9]+", "_", param))
