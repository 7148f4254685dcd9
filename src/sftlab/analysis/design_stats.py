"""The analysis of a two-level factorial design over prompt components, read from a sweep dir on disk.

A sweep dir is a design when the sweeper wrote ``design.json`` there (``hydra.sweeper.design``), or when the
finished jobs' ``prompt.components`` switches vary (a hand-made multirun). Per factor, from the finished jobs'
objective (``eval.objective``, as the sweep optimised it; from ``eval.json`` or ``metrics.json``):

- the mean objective at each level and the main effect (mean at ``true`` minus mean at ``false``) with a 95%
  confidence interval: twice the coefficient's interval of the OLS main-effects model in ±1 coding;
- ANOVA (statsmodels ``ols`` + ``anova_lm``, type II) with p-values and percent contribution (the factor's sum of
  squares over the total). A saturated design (an L8 of seven factors with one seed) leaves no residual degree of
  freedom: as Taguchi practice does, the factors with the smallest sums of squares are *pooled* into the error
  until two degrees of freedom are left, and the report names them;
- Taguchi's signal-to-noise ratio per design row over its seeds and translation directions: the per-direction
  values of ``sn_metric`` (a translation score; by default the objective when it is one), else the objective itself
  over the seeds; larger-the-better ``-10 log10(mean(1/y^2))`` for a score or a maximised objective,
  smaller-the-better ``-10 log10(mean(y^2))`` for a loss; its mean per level, and its prediction at the best
  combination, which ``confirm`` measures;
- the predicted best combination under the additive model
  (grand mean plus each factor's best-level deviation), with Taguchi's confirmation interval
  ``sqrt(F(1, df_e) * V_e * (1/n_eff + 1/r))``, ``n_eff = N / (1 + factors' df)``, r the confirmation runs.

With several objectives (``eval.objective=[chrf, train_seconds]``) the analysis takes the first and says so: the
statistics above need one number per run. ``python -m sftlab.design confirm`` (``sftlab.commands.design``) trains
the predicted best combination and compares; the report renders the tables (``sftlab.analysis.render``) and
writes them with a main-effects plot (``sftlab.analysis.write``, ``sftlab.analysis.plots``).
No torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sftlab.analysis.runs import Job, find_jobs, node, objective_of
from sftlab.designs import factorial as design_lib
from sftlab.errors import SftlabError
from sftlab.objectives import SCORES
from sftlab.objectives import direction as objective_direction

ALPHA = 0.05
MIN_ERROR_DF = 2


@dataclass
class DesignAnalysis:
    sweep_dir: Path
    factors: list[str]
    prefix: str
    objective: str
    direction: str  # maximize | minimize
    runs: pd.DataFrame  # one row per finished job: job, seed, <factor> (±1), y, direction_scores (of sn_metric)
    effects: pd.DataFrame
    anova: pd.DataFrame
    sn: pd.DataFrame  # one row per design row: levels, n, mean, S/N
    sn_effects: pd.DataFrame
    best: dict[str, bool]
    predicted: float
    # Taguchi's confirmation interval is ci_scale * sqrt(1/n_eff + 1/r): ci_scale = sqrt(F(1, df_e) * V_e), None
    # without error degrees of freedom; n_eff = N / (1 + the factors' degrees of freedom).
    ci_scale: float | None = None
    n_eff: float = math.nan
    pooled: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    design: design_lib.Design | None = None
    design_json: dict[str, Any] | None = None
    sn_metric: str | None = None  # the score whose per-direction values the S/N takes; None: the objective's

    @property
    def sn_maximize(self) -> bool:
        """Larger-the-better S/N for scores and maximised objectives, smaller-the-better for losses and costs."""
        return self.sn_metric is not None or self.maximize

    @property
    def sn_source(self) -> str:
        """What the S/N is computed from, in words."""
        if self.sn_metric is None:
            return f"{self.objective} over a row's seeds"
        return f"{self.sn_metric} per direction, over a row's seeds and directions"

    @property
    def predicted_sn(self) -> float:
        """S/N at the best combination under the additive model: the mean S/N plus each factor's deviation at its
        chosen level."""
        grand = float(self.sn["sn"].mean())
        chosen = (row.sn_true if self.best[row.factor] else row.sn_false for row in self.sn_effects.itertuples())
        return grand + sum(level - grand for level in chosen)

    def sn_values(self, job: Job) -> list[float]:
        """The values one run adds to an S/N: its per-direction ``sn_metric`` scores, else its objective."""
        if self.sn_metric is not None:
            return direction_scores(job, self.sn_metric)
        _, value = objective_of(job)
        return [] if value is None else [value]

    @property
    def maximize(self) -> bool:
        return self.direction == "maximize"

    @property
    def interval(self) -> float | None:
        """Half-width of the confirmation interval for one run."""
        return self.confirmation_interval(1)

    def confirmation_interval(self, runs: int) -> float | None:
        """Half-width for the mean of ``runs`` confirmation runs."""
        if self.ci_scale is None:
            return None
        return self.ci_scale * math.sqrt(1 / self.n_eff + 1 / max(runs, 1))


# ---------------------------------------------------------------------------------------------------- reading


def level_of(value: Any) -> bool | None:
    """A two-level switch's value as a bool; None when it is no switch."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return None


def varying_components(jobs: list[Job], prefix: str = design_lib.PREFIX) -> list[str]:
    """The two-level switches under ``prefix`` whose value differs across the jobs, in config order."""
    names: list[str] = []
    for job in jobs:
        switches = node(job.config, prefix)
        for name in switches if isinstance(switches, dict) else {}:
            if name not in names:
                names.append(name)
    return [
        name for name in names if len({level_of(node(job.config, f"{prefix}.{name}")) for job in jobs} - {None}) == 2
    ]


def direction_scores(job: Job, metric: str) -> list[float]:
    directions = (job.scores or {}).get("directions") or {}
    return [float(entry[metric]) for entry in directions.values() if metric in entry]


def find_design(sweep_dir: Path, jobs: list[Job]) -> dict[str, Any] | None:
    """The design of the sweep dir: from its design.json, else the varying switches of a one-format multirun."""
    found = design_lib.read(sweep_dir)
    if found is not None:
        design, data = found
        return {"design": design, "design_json": data, "factors": list(design.factors), "prefix": design.prefix}
    if len({job.format for job in jobs}) != 1:  # formats differ in more than their switches: no design
        return None
    factors = varying_components(jobs, design_lib.PREFIX)
    if not factors:
        return None
    return {"design": None, "design_json": None, "factors": factors, "prefix": design_lib.PREFIX}


def design_row(job: Job, factors: list[str], prefix: str, sn_metric: str | None) -> dict[str, Any] | None:
    """One job as a run of the design: its levels (±1), objective and per-direction scores for the S/N (of
    ``sn_metric``, else of the objective when it is a score); None without a value or a level."""
    objective, value = objective_of(job)
    metric = sn_metric or (objective if objective in SCORES else None)
    levels = {factor: level_of(node(job.config, f"{prefix}.{factor}")) for factor in factors}
    if value is None or any(level is None for level in levels.values()):
        return None
    return {
        "job": job.name,
        "seed": job.seed,
        "objective": objective,
        **{factor: 1 if level else -1 for factor, level in levels.items()},
        "y": value,
        "direction_scores": direction_scores(job, metric) if metric else [],
    }


def collect(
    sweep_dir: Path, jobs: list[Job] | None = None, sn_metric: str | None = None
) -> tuple[pd.DataFrame, dict[str, Any]] | None:
    """The design's finished runs as a frame (None when the sweep dir is no design), and what was found about it."""
    jobs = [job for job in (jobs if jobs is not None else find_jobs(sweep_dir)) if job.finished]
    meta = find_design(sweep_dir, jobs)
    if meta is None:
        return None
    rows = {job.name: design_row(job, meta["factors"], meta["prefix"], sn_metric) for job in jobs}
    meta["skipped"] = [name for name, row in rows.items() if row is None]
    meta["several_objectives"] = sorted({", ".join(job.objectives) for job in jobs if len(job.objectives) > 1})
    return pd.DataFrame([row for row in rows.values() if row is not None]), meta


# ---------------------------------------------------------------------------------------------------- statistics


def _formula(factors: list[str]) -> str:
    return "y ~ " + (" + ".join(f"Q('{f}')" for f in factors) if factors else "1")


def fit(runs: pd.DataFrame, factors: list[str]) -> tuple[Any, list[str], list[str]]:
    """The OLS main-effects model; factors with the smallest sums of squares pooled into error when too few
    residual degrees of freedom are left. Returns the model, the factors kept and those pooled."""
    import statsmodels.formula.api as smf

    y = runs["y"].to_numpy(dtype=float)
    ss = {f: len(y) * ((y * runs[f].to_numpy()).mean()) ** 2 for f in factors}  # balanced two-level: N * beta^2
    kept = sorted(factors, key=lambda f: -ss[f])
    pooled: list[str] = []
    while kept and len(runs) - 1 - len(kept) < MIN_ERROR_DF:
        pooled.insert(0, kept.pop())
    model = smf.ols(_formula(kept), data=runs).fit()
    return model, [f for f in factors if f in kept], pooled


def main_effects(runs: pd.DataFrame, factors: list[str], model: Any, maximize: bool) -> pd.DataFrame:
    rows = []
    for factor in factors:
        low = runs.loc[runs[factor] < 0, "y"].mean()
        high = runs.loc[runs[factor] > 0, "y"].mean()
        term = f"Q('{factor}')"
        if term in model.params.index and model.df_resid > 0:
            ci_low, ci_high = (2 * model.conf_int(alpha=ALPHA).loc[term]).tolist()
        else:
            ci_low = ci_high = math.nan
        better_high = high >= low if maximize else high <= low
        rows.append(
            {
                "factor": factor,
                "mean_false": low,
                "mean_true": high,
                "effect": high - low,
                "ci_low": ci_low,
                "ci_high": ci_high,
                "best_level": bool(better_high),
            }
        )
    frame = pd.DataFrame(rows)
    return frame.reindex(frame["effect"].abs().sort_values(ascending=False).index).reset_index(drop=True)


def anova_table(runs: pd.DataFrame, model: Any, kept: list[str], pooled: list[str]) -> pd.DataFrame:
    from statsmodels.stats.anova import anova_lm

    total = float(((runs["y"] - runs["y"].mean()) ** 2).sum())
    if kept and model.df_resid > 0:
        table = anova_lm(model, typ=2)
        table.index = [name[3:-2] if name.startswith("Q('") else name for name in table.index]
    else:
        table = pd.DataFrame({"sum_sq": [total], "df": [float(len(runs) - 1)], "F": [math.nan]}, index=["Residual"])
        table["PR(>F)"] = math.nan
    table = table.rename(columns={"PR(>F)": "p"})
    table["percent"] = 100 * table["sum_sq"] / total if total > 0 else math.nan
    table = table.reset_index().rename(columns={"index": "source"})
    if pooled:
        table.loc[table["source"] == "Residual", "source"] = f"Residual (pooled: {', '.join(pooled)})"
    return table


def signal_to_noise(values: list[float], maximize: bool) -> float:
    y = np.asarray(values, dtype=float)
    if y.size == 0:
        return math.nan
    with np.errstate(divide="ignore"):
        if maximize:
            return float(-10 * np.log10(np.mean(1.0 / y**2))) if (y != 0).all() else -math.inf
        return float(-10 * np.log10(np.mean(y**2))) if (y != 0).any() else math.inf


def sn_table(runs: pd.DataFrame, factors: list[str], maximize: bool) -> pd.DataFrame:
    rows = []
    for levels, group in runs.groupby(factors, sort=False):
        levels = levels if isinstance(levels, tuple) else (levels,)
        values = [v for scores in group["direction_scores"] for v in scores] or group["y"].tolist()
        rows.append(
            {
                **dict(zip(factors, levels, strict=True)),
                "runs": len(group),
                "values": len(values),
                "mean": float(np.mean(group["y"])),
                "sn": signal_to_noise(values, maximize),
            }
        )
    return pd.DataFrame(rows)


def sn_effects(sn: pd.DataFrame, factors: list[str]) -> pd.DataFrame:
    rows = []
    for factor in factors:
        low = sn.loc[sn[factor] < 0, "sn"].mean()
        high = sn.loc[sn[factor] > 0, "sn"].mean()
        rows.append(
            {"factor": factor, "sn_false": low, "sn_true": high, "delta": high - low, "best_level": high >= low}
        )
    return pd.DataFrame(rows)


def analyse(sweep_dir: Path, jobs: list[Job] | None = None, sn_metric: str | None = None) -> DesignAnalysis | None:
    """The analysis of the design in ``sweep_dir``, or None when it holds no design (or no finished run of it).

    ``sn_metric`` is the translation score whose per-direction values the S/N ratio takes (default: the objective
    when it is a score, else the objective itself)."""
    if sn_metric is not None and sn_metric not in SCORES:
        raise SftlabError(f"unknown S/N metric {sn_metric!r} (expected one of {', '.join(SCORES)})")
    collected = collect(sweep_dir, jobs, sn_metric)
    if collected is None or collected[0].empty:
        return None
    runs, meta = collected
    objective = one_objective(runs)
    sn_metric = sn_metric or (objective if objective in SCORES else None)
    if sn_metric is not None:
        check_sn_scores(runs, sn_metric)
    maximize = objective_direction(objective) == "maximize"
    notes = data_notes(runs, meta, objective, sn_metric)
    constant = [f for f in meta["factors"] if runs[f].nunique() < 2]
    if constant:
        notes.append(f"factors at one level only among the finished runs (no effect estimable): {constant}")
    factors = [f for f in meta["factors"] if f not in constant]
    model, kept, pooled = fit(runs, factors)
    if pooled:
        notes.append(
            f"{len(runs)} runs leave too few degrees of freedom for error with {len(factors)} factors: the smallest "
            f"effects ({', '.join(pooled)}) are pooled into the error term (Taguchi pooling); their p-values and "
            "intervals are not estimated"
        )
    effects = main_effects(runs, factors, model, maximize)
    sn = sn_table(runs, factors, maximize or sn_metric is not None)
    grand = float(runs["y"].mean())
    predicted = grand + sum(
        (row.mean_true if row.best_level else row.mean_false) - grand for row in effects.itertuples()
    )
    return DesignAnalysis(
        sweep_dir=Path(sweep_dir),
        factors=factors,
        prefix=meta["prefix"],
        objective=objective,
        direction="maximize" if maximize else "minimize",
        runs=runs,
        effects=effects,
        anova=anova_table(runs, model, kept, pooled),
        sn=sn,
        sn_effects=sn_effects(sn, factors),
        best={row.factor: bool(row.best_level) for row in effects.itertuples()},
        predicted=predicted,
        ci_scale=confirmation_scale(model) if kept else None,
        n_eff=len(runs) / (1 + len(factors)),
        pooled=pooled,
        notes=notes,
        design=meta["design"],
        design_json=meta["design_json"],
        sn_metric=sn_metric,
    )


def one_objective(runs: pd.DataFrame) -> str:
    """The objective every design run was analysed on; runs that optimised different ones cannot be compared."""
    found = set(runs["objective"])
    if len(found) > 1:
        raise SftlabError(f"design runs optimised different objectives: {sorted(found)}")
    return found.pop()


def check_sn_scores(runs: pd.DataFrame, metric: str) -> None:
    """An S/N over a score needs every run's per-direction scores; one without them is an error, never mixed in."""
    without = runs.loc[[not scores for scores in runs["direction_scores"]], "job"].tolist()
    if without:
        raise SftlabError(
            f"the S/N ratio on {metric} needs each run's per-direction {metric} in eval.json; jobs "
            f"{', '.join(without)} have none (evaluation disabled?)"
        )


def data_notes(runs: pd.DataFrame, meta: dict[str, Any], objective: str, sn_metric: str | None) -> list[str]:
    """What the reader should know about the runs before trusting the statistics."""
    notes = []
    if meta["several_objectives"]:
        notes.append(
            f"the runs optimised several objectives ({'; '.join(meta['several_objectives'])}): the design analysis "
            f"uses the first, {objective}"
        )
    if meta["skipped"]:
        notes.append(f"jobs without an objective value or factor levels, left out: {', '.join(meta['skipped'])}")
    if runs["y"].nunique() == 1:
        notes.append(f"every run scored {objective} = {runs['y'].iloc[0]:g}: no effect to estimate")
    if sn_metric is not None and any(v == 0 for scores in runs["direction_scores"] for v in scores):
        notes.append("some direction scored 0: larger-the-better S/N is -inf for its rows")
    return notes


def confirmation_scale(model: Any) -> float | None:
    """``sqrt(F(1, df_e) * V_e)`` of the fitted model; None without error degrees of freedom."""
    from scipy import stats

    if model.df_resid <= 0:
        return None
    return math.sqrt(stats.f.ppf(1 - ALPHA, 1, float(model.df_resid)) * float(model.mse_resid))


def levels_text(best: dict[str, bool]) -> str:
    """Factor levels as overrides write them: ``system=true, context=false``."""
    return ", ".join(f"{factor}={str(level).lower()}" for factor, level in best.items())
