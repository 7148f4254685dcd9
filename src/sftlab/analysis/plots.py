"""The report's figures: a score per format and direction, and the sweep objective against each varying parameter."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pandas as pd

from sftlab.analysis.systems import format_value
from sftlab.analysis.tables import METRIC_LABELS
from sftlab.objectives import direction as objective_direction


def pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_by_format(summary: pd.DataFrame, metric: str, path: Path) -> Path:
    """Grouped bars: one group per direction (and macro), one bar per system, error bars = std over seeds."""
    plt = pyplot()
    systems = list(dict.fromkeys(summary["system"]))
    directions = list(dict.fromkeys(summary["direction"]))
    width = 0.8 / len(systems)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 * len(directions) * max(1, len(systems)) ** 0.5 + 2), 4.5))
    for index, system in enumerate(systems):
        rows = summary[summary["system"] == system].set_index("direction").reindex(directions)
        positions = [d + (index - (len(systems) - 1) / 2) * width for d in range(len(directions))]
        std = rows[f"{metric}_std"]
        yerr = std.fillna(0) if std.notna().any() else None  # one run: no error bar at all
        ax.bar(positions, rows[f"{metric}_mean"], width, yerr=yerr, capsize=3, label=system)
    ax.set_xticks(range(len(directions)), directions)
    ax.set_ylabel(f"{METRIC_LABELS[metric]} (mean ± std over seeds)")
    ax.set_title(f"{METRIC_LABELS[metric]} by prompt format")
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_objective(table: pd.DataFrame, param: str, path: Path) -> Path:
    """The objective of every evaluated job against one hyperparameter, coloured by prompt format."""
    plt = pyplot()
    objective = table["objective"].iloc[0]
    values = table[param]
    numeric = pd.to_numeric(values, errors="coerce").notna().all()
    fig, ax = plt.subplots(figsize=(6, 4))
    if numeric:
        x = pd.to_numeric(values).astype(float)
        if (x > 0).all() and x.max() / x.min() >= 10:  # learning rates and the like: spread over decades
            ax.set_xscale("log")
    else:
        categories = sorted({format_value(v) for v in values})
        x = values.map(lambda v: categories.index(format_value(v))).astype(float)
        ax.set_xticks(range(len(categories)), categories)
    for name, group in table.assign(x=x).groupby("format"):
        ax.scatter(group["x"], group["value"], label=name, alpha=0.8)
    best = table["value"].idxmin() if objective_direction(objective) == "minimize" else table["value"].idxmax()
    ax.scatter([x[best]], [table["value"][best]], s=160, facecolors="none", edgecolors="black", label="best")
    ax.set_xlabel(param)
    ax.set_ylabel(f"{objective} ({objective_direction(objective)}d)")
    ax.set_title(f"{objective} vs {param}")
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_name(param: str) -> str:
    return f"objective_vs_{re.sub(r'[^A-Za-z0-9]+', '_', param)}.png"
