"""The report's tables as data frames: scores per run, their summary per system, the score matrix, the sweep table
and report.csv; and markdown tables of data frames, as the report and the design analysis write them."""

from __future__ import annotations

import math

import pandas as pd

from sftlab import objectives
from sftlab.analysis.pareto import pareto_front
from sftlab.analysis.runs import Job, format_value, objective_value
from sftlab.analysis.systems import param_value, system_of

METRIC_LABELS = {"bleu": "BLEU", "chrf": "chrF", "chrf_pp": "chrF++"}
FRONT = "pareto_front"  # the sweep table's column marking the non-dominated runs


def markdown_table(frame: pd.DataFrame) -> str:
    """A GitHub markdown table (no tabulate needed); ``|`` in cells is escaped."""
    header = [str(column) for column in frame.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for values in frame.itertuples(index=False):
        cells = ["" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v) for v in values]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


def run_scores(jobs: list[Job], hparams: list[str]) -> pd.DataFrame:
    """One row per evaluated job x direction (and ``macro``): the scores from eval.json."""
    rows = []
    for job in jobs:
        assert job.scores is not None
        entries = {**job.scores["directions"], "macro": job.scores["macro"]}
        for direction, entry in entries.items():
            row = {"job": job.name, "system": system_of(job, hparams), "format": job.format, "seed": job.seed}
            row.update({key: param_value(job, key) for key in hparams})
            row.update({"direction": direction, **{name: float(entry[name]) for name in objectives.SCORES}})
            rows.append(row)
    return pd.DataFrame(rows)


def summarize(scores: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Mean and sample std (ddof=1; NaN for one run) over a system's runs, per direction; best systems first."""
    keys = ["system", "format", "direction"]
    grouped = scores.groupby(keys, sort=False)
    summary = grouped[list(objectives.SCORES)].agg(["mean", "std"])
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
    for name in objectives.SCORES:
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


def sweep_table(jobs: list[Job], hparams: list[str], names: list[str]) -> pd.DataFrame:
    """One row per job: its varying parameters and every objective in ``names``, best first by the first one.

    With two or more objectives, ``pareto_front`` marks the runs no other run beats on every objective.
    """
    rows = []
    for job in jobs:
        row = {"job": job.name, "format": job.format, "seed": job.seed}
        row.update({key: param_value(job, key) for key in hparams})
        row.update({name: objective_value(job, name) for name in names})
        rows.append(row)
    table = pd.DataFrame(rows)
    if len(names) >= 2:
        table[FRONT] = pareto_front(table[names], [objectives.direction(name) for name in names])
    ascending = objectives.direction(names[0]) == "minimize"
    return table.sort_values(names[0], ascending=ascending, na_position="last", kind="stable").reset_index(drop=True)


def report_csv(summary: pd.DataFrame, outcomes: pd.DataFrame, metric: str, baseline: str) -> pd.DataFrame:
    """report.csv: one row per system x direction; std blank with one run; the test outcome of ``metric``."""
    frame = summary.copy()
    outcomes = outcomes.rename(columns={"p": f"{metric}_p", "verdict": f"{metric}_vs_baseline"})
    columns = ["system", "direction", f"{metric}_p", f"{metric}_vs_baseline"]
    if not outcomes.empty:
        frame = frame.merge(outcomes[columns], on=["system", "direction"], how="left")
    frame.loc[frame["format"] == baseline, f"{metric}_vs_baseline"] = "baseline"
    return frame
