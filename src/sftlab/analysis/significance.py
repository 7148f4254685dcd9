"""Paired significance tests against the baseline format: sacreBLEU's paired bootstrap per direction and seed.

- The test is sacreBLEU's own paired bootstrap (``PairedTest``, ``test_type="bs"``), on the per-pair hypotheses in
  ``predictions.jsonl``, per direction, for the chosen metric. Each system is paired with the baseline format at
  the same parameters and the *same seed* (same data order and initialisation), so every seed gives its own test
  and p-value. Seeds are not pooled: pooling would resample the same source sentence several times as if
  independent and understate the variance.
- A system is called better (or worse) than the baseline in a direction only when *every* paired seed is
  significant (p < 0.05) with the same sign: an intersection-union test, whose p-value is the largest per-seed
  p-value. Anything else is reported in words as "not significantly different" (or "seeds disagree"). No
  correction for testing many formats x directions is applied; the report says how many tests were run.
- sacreBLEU's paired bootstrap returns its floor p = 1/(n+1) when both systems score exactly the same (every
  resampled difference is 0, and it counts none as "at least as large"). An observed difference of zero is no
  evidence of a difference, so such a comparison is given p = 1.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from sftlab import rundir
from sftlab.analysis.runs import Job, format_value, job_sort_key
from sftlab.analysis.systems import system_of
from sftlab.analysis.tables import METRIC_LABELS
from sftlab.evaluation.scoring import metrics_for

ALPHA = 0.05


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
    predictions: dict[str, Any] = {}  # job name -> its predictions by direction, each file read once
    unreproduced: set[str] = set()
    rows = []
    for job, partner in pairs:
        for one in (job, partner):
            predictions.setdefault(one.name, predictions_by_direction(one))
        ours, theirs = predictions[job.name], predictions[partner.name]
        label = f"{system_of(job, hparams)} seed {format_value(job.seed)}"
        if ours is None or theirs is None:
            lacking = job if ours is None else partner
            notes.append(f"{label}: job {lacking.name} has no {rundir.PREDICTIONS}, not tested")
            continue
        for direction in partner.scores["directions"]:
            if direction not in theirs or set(ours.get(direction, {})) != set(theirs[direction]):
                notes.append(f"{label} {direction}: predictions do not match the baseline's, not tested")
                continue
            row = paired_test_row(
                job, partner, hparams, direction, (ours[direction], theirs[direction]), metric, resamples
            )
            rows.append(row)
            for one, score in ((job, row["score"]), (partner, row["baseline_score"])):
                if not math.isclose(score, one.scores["directions"][direction][metric], abs_tol=0.01):
                    unreproduced.add(one.name)
    if unreproduced:
        names = ", ".join(sorted(unreproduced, key=lambda name: job_sort_key(Path(name))))
        notes.append(
            f"the {rundir.PREDICTIONS} of jobs {names} do not reproduce their {rundir.EVAL} {METRIC_LABELS[metric]}: "
            f"the score tables use {rundir.EVAL}, the tests {rundir.PREDICTIONS}"
        )
    return pd.DataFrame(rows), notes


def paired_test_row(
    job: Job,
    partner: Job,
    hparams: list[str],
    direction: str,
    predictions: tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]],
    metric: str,
    resamples: int,
) -> dict[str, Any]:
    """The paired bootstrap of one job against its baseline partner in one direction, as a significance.csv row."""
    ours, theirs = predictions
    base_score, score, p_value = paired_bootstrap(theirs, ours, metric, resamples)
    return {
        "system": system_of(job, hparams),
        "baseline": system_of(partner, hparams),
        "direction": direction,
        "seed": format_value(job.seed),
        "job": job.name,
        "baseline_job": partner.name,
        "metric": metric,
        "score": score,
        "baseline_score": base_score,
        "delta": score - base_score,
        "p_value": p_value,
        "resamples": resamples,
    }


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
