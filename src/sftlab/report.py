"""``python -m sftlab.report MULTIRUN_DIR``: compare the prompt formats (and sweep trials) of one multirun.

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

import argparse
import math
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from sftlab import rundir
from sftlab.config import objective_direction
from sftlab.errors import SftlabError
from sftlab.scoring import SCORES, metrics_for

DEFAULT_BASELINE = "reasoning_tags"
ALPHA = 0.05
DEFAULT_RESAMPLES = 1000
# Checked for variation in every multirun; keys a job overrode on the command line are checked too.
HPARAMS = ("model.name", "lora.r", "lora.alpha", "trainer.learning_rate", "trainer.max_seq_length")
NOT_HPARAMS = {"prompt", "prompt.name", "seed", "run_name"}
METRIC_LABELS = {"bleu": "BLEU", "chrf": "chrF", "chrf_pp": "chrF++"}
UNKNOWN_TEST_SET = "unknown"

OPTUNA_RESULTS = rundir.SWEEP_RESULTS
OPTUNA_TRIALS = rundir.SWEEP_TRIALS
OPTUNA_PLOTS = (rundir.SWEEP_HISTORY_PLOT, rundir.SWEEP_IMPORTANCE_PLOT)  # the sweeper's own, linked when present
REPORT_MD = "report.md"
REPORT_CSV = "report.csv"
SIGNIFICANCE_CSV = "significance.csv"


# ---------------------------------------------------------------------------------------------------- reading jobs


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


def varying_hparams(jobs: list[Job]) -> list[str]:
    """Hyperparameters (known ones, and any key a job overrode) whose value differs across ``jobs``."""
    candidates = list(HPARAMS)
    for job in jobs:
        for override in job.overrides:
            key = override.split("=", 1)[0].lstrip("+~")
            if key not in candidates and key not in NOT_HPARAMS and not key.startswith("hydra"):
                candidates.append(key)
    return [key for key in candidates if len({format_value(lookup(job.config, key)) for job in jobs}) > 1]


def format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def system_of(job: Job, hparams: list[str], prompt_format: str | None = None) -> str:
    """A prompt format, and the varying hyperparameters when there are any: ``alpaca [lora.r=8]``.

    With ``prompt_format``, the system of that format at this job's hyperparameters (its baseline partner).
    """
    name = prompt_format or job.format
    if not hparams:
        return name
    return f"{name} [{', '.join(f'{key}={format_value(lookup(job.config, key))}' for key in hparams)}]"


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


def predictions_by_direction(job: Job) -> dict[str, dict[str, dict[str, Any]]] | None:
    path = job.path / rundir.PREDICTIONS
    if not path.is_file():
        return None
    by_direction: dict[str, dict[str, dict[str, Any]]] = {}
    for row in rundir.read_jsonl(path):
        by_direction.setdefault(row["direction"], {})[str(row["id"])] = row
    return by_direction


def paired_bootstrap(
    baseline: dict[str, dict[str, Any]], system: dict[str, dict[str, Any]], metric: str, resamples: int
) -> tuple[float, float, float]:
    """(baseline score, system score, p-value) of sacreBLEU's paired bootstrap on the same test pairs."""
    from sacrebleu.significance import PairedTest

    ids = sorted(baseline)
    target_lang = baseline[ids[0]]["target_lang"]
    references = [[baseline[i]["reference"] for i in ids]]
    test = PairedTest(
        [("baseline", [baseline[i]["hypothesis"] for i in ids]), ("system", [system[i]["hypothesis"] for i in ids])],
        {metric: metrics_for(target_lang)[metric]},
        references,
        test_type="bs",
        n_samples=resamples,
    )
    _, results = test()
    base_result, system_result = next(value for key, value in results.items() if key != "System")
    p_value = system_result.p_value
    if math.isclose(system_result.score, base_result.score, abs_tol=1e-9):
        p_value = 1.0  # no observed difference; sacreBLEU would return its floor 1/(n+1) here
    return float(base_result.score), float(system_result.score), float(p_value)


def pair_with_baseline(
    jobs: list[Job], hparams: list[str], baseline: str, order: list[str]
) -> tuple[list[tuple[Job, Job]], list[str]]:
    """(job, baseline job of the same hyperparameters and seed) for every non-baseline job, in table order."""
    by_system_seed: dict[tuple[str, str], Job] = {}
    notes: list[str] = []
    for job in jobs:
        key = (system_of(job, hparams), format_value(job.seed))
        if key in by_system_seed:
            notes.append(f"job {job.name} repeats {key[0]} seed {key[1]} (job {by_system_seed[key].name}): not tested")
            continue
        by_system_seed[key] = job
    pairs = []
    for (system, seed), job in sorted(by_system_seed.items(), key=lambda item: order.index(item[0][0])):
        if job.format == baseline:
            continue
        partner = by_system_seed.get((system_of(job, hparams, baseline), seed))
        if partner is None:
            notes.append(f"{system} seed {seed} (job {job.name}): no baseline run with the same seed, not tested")
        else:
            pairs.append((job, partner))
    return pairs, notes


def significance(
    jobs: list[Job], hparams: list[str], baseline: str, metric: str, resamples: int, order: list[str]
) -> tuple[pd.DataFrame, list[str]]:
    """One paired test per non-baseline job x direction, against the baseline job of the same seed."""
    pairs, notes = pair_with_baseline(jobs, hparams, baseline, order)
    cache: dict[str, Any] = {}
    unreproduced: set[str] = set()
    rows = []
    for job, partner in pairs:
        for one in (job, partner):
            if one.name not in cache:
                cache[one.name] = predictions_by_direction(one)
        ours, theirs = cache[job.name], cache[partner.name]
        system, seed = system_of(job, hparams), format_value(job.seed)
        if ours is None or theirs is None:
            lacking = job if ours is None else partner
            notes.append(f"{system} seed {seed}: job {lacking.name} has no {rundir.PREDICTIONS}, not tested")
            continue
        for direction in partner.scores["directions"]:
            if direction not in theirs or set(ours.get(direction, {})) != set(theirs[direction]):
                notes.append(f"{system} seed {seed} {direction}: predictions do not match the baseline's, not tested")
                continue
            base_score, score, p_value = paired_bootstrap(theirs[direction], ours[direction], metric, resamples)
            for one, value in ((job, score), (partner, base_score)):
                if not math.isclose(value, one.scores["directions"][direction][metric], abs_tol=0.01):
                    unreproduced.add(one.name)
            rows.append(
                {
                    "system": system,
                    "baseline": system_of(partner, hparams),
                    "direction": direction,
                    "seed": seed,
                    "job": job.name,
                    "baseline_job": partner.name,
                    "metric": metric,
                    "score": score,
                    "baseline_score": base_score,
                    "delta": score - base_score,
                    "p_value": p_value,
                    "resamples": resamples,
                }
            )
    if unreproduced:
        names = ", ".join(sorted(unreproduced, key=lambda name: job_sort_key(Path(name))))
        notes.append(
            f"the {rundir.PREDICTIONS} of jobs {names} do not reproduce their {rundir.EVAL} {METRIC_LABELS[metric]}: "
            f"the score tables use {rundir.EVAL}, the tests {rundir.PREDICTIONS}"
        )
    return pd.DataFrame(rows), notes


def verdict(tests: pd.DataFrame) -> tuple[str, float]:
    """The plain-words outcome of one system x direction over its seeds, and its p-value (the largest)."""
    p_max = float(tests["p_value"].max())
    significant = bool((tests["p_value"] < ALPHA).all())
    if significant and (tests["delta"] > 0).all():
        return "better", p_max
    if significant and (tests["delta"] < 0).all():
        return "worse", p_max
    if significant:
        return "seeds disagree", p_max
    return "not significantly different", p_max


def verdicts(tests: pd.DataFrame) -> pd.DataFrame:
    """One row per system x direction: seeds tested, mean difference, per-seed p-values, verdict."""
    if tests.empty:
        return pd.DataFrame(columns=["system", "baseline", "direction", "seeds", "delta", "p_values", "p", "verdict"])
    rows = []
    for (system, direction), group in tests.groupby(["system", "direction"], sort=False):
        outcome, p_max = verdict(group)
        rows.append(
            {
                "system": system,
                "baseline": group["baseline"].iloc[0],
                "direction": direction,
                "seeds": " ".join(str(seed) for seed in group["seed"]),
                "delta": float(group["delta"].mean()),
                "p_values": ", ".join(f"{p:.3g}" for p in group["p_value"]),
                "p": p_max,
                "verdict": outcome,
            }
        )
    return pd.DataFrame(rows)


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


def objective_of(job: Job) -> tuple[str, float | None]:
    """The value the sweep optimised for this job (``eval.objective``), read back from eval.json/metrics.json."""
    objective = str(lookup(job.config, "eval.objective") or "chrf")
    if objective in SCORES:
        value = (job.scores or {}).get("macro", {}).get(objective)
    else:
        value = (job.metrics or {}).get(objective)
    return objective, None if value is None else float(value)


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


# ---------------------------------------------------------------------------------------------------- markdown


def markdown_table(frame: pd.DataFrame) -> str:
    """A GitHub markdown table (no tabulate needed); ``|`` in cells is escaped."""
    header = [str(column) for column in frame.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for values in frame.itertuples(index=False):
        cells = ["" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v) for v in values]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


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
    from sftlab.design_analysis import report_section

    return report_section(report.sweep_dir, report.evaluated)


def print_summary(report: Report, written: list[Path]) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(highlight=False)
    label = METRIC_LABELS[report.metric]
    table = Table(title=f"macro {label} by system (baseline {report.baseline})")
    for column in ("system", "runs", f"macro {label}", "vs baseline (directions)"):
        table.add_column(column, justify="left" if column == "system" else "right")
    macro = report.summary[report.summary["direction"] == "macro"]
    for _, row in macro.iterrows():
        outcomes = report.outcomes[report.outcomes["system"] == row["system"]] if not report.outcomes.empty else None
        if row["format"] == report.baseline:
            against = "baseline"
        elif outcomes is None or outcomes.empty:
            against = "not tested"
        else:
            against = ", ".join(f"{count} {name}" for name, count in Counter(outcomes["verdict"]).items())
        score = cell(row[f"{report.metric}_mean"], row[f"{report.metric}_std"], False)
        table.add_row(Text(row["system"]), str(row["runs"]), score, against)  # Text: "[lora.r=8]" is no markup
    console.print(table)
    lines = [counts_line(report)]
    lines += [
        f"  failed: job {job.name} ({job.format}): {(job.failure or {}).get('message', '?')}" for job in report.failed
    ]
    lines += [f"  missing: job {job.name} ({job.format}): {missing_reason(job)}" for job in report.missing]
    lines.append("written: " + ", ".join(str(path) for path in written))
    for line in lines:
        console.print(line, markup=False)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m sftlab.report",
        description="Compare the prompt formats (and sweep trials) of one multirun: report.md, report.csv, plots.",
    )
    parser.add_argument("sweep_dir", type=Path, help="a Hydra multirun (or Optuna sweep) dir with job dirs 0/, 1/, ...")
    parser.add_argument("--baseline", help=f"prompt format to test against (default {DEFAULT_BASELINE} if present)")
    parser.add_argument("--metric", default="chrf", choices=SCORES, help="score to rank, test and plot (chrf)")
    parser.add_argument("--resamples", type=int, help="bootstrap resamples (default: eval.bootstrap_resamples)")
    parser.add_argument("--test-set", help="sha256 prefix: report only the runs scored on that test set")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        report = build_report(args.sweep_dir, args.baseline, args.metric, args.resamples, args.test_set)
        written = write_report(report)
    except SftlabError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except OSError as error:  # e.g. a read-only multirun dir
        print(f"error: cannot write the report: {error}", file=sys.stderr)
        return 1
    print_summary(report, written)
    return 0


if __name__ == "__main__":
    sys.exit(main())
