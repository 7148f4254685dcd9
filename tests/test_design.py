"""Factorial designs (sftlab.designs), their analysis (sftlab.analysis.design_stats) and a design run through the
Optuna sweeper on the tiny model: interrupted, resumed, analysed."""

from __future__ import annotations

import itertools
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState

from conftest import ROOT, TINY_RUN
from sftlab.analysis import design_stats as design_analysis
from sftlab.analysis.render import render_design
from sftlab.analysis.write import write_design
from sftlab.commands import design as design_cli
from sftlab.designs import factorial as design_lib

COMPONENTS = [
    "system",
    "context",
    "reasoning",
    "inject_keywords",
    "keywords",
    "metadata",
    "transformed_input",
    "reasoning_first",
]


def designs() -> list[design_lib.Design]:
    return [
        design_lib.full_factorial(COMPONENTS[:3]),
        design_lib.fractional_factorial(COMPONENTS[:4], "a b c abc"),
        design_lib.fractional_factorial(COMPONENTS[:5], resolution=3),
        design_lib.taguchi("L8", COMPONENTS[:7]),
        design_lib.taguchi("L8", COMPONENTS[:4]),
        design_lib.taguchi("L12", COMPONENTS),
        design_lib.taguchi("L16", COMPONENTS),
        design_lib.taguchi("L16", COMPONENTS[:5]),
    ]


@pytest.mark.parametrize("design", designs(), ids=lambda d: f"{d.name}-{len(d.factors)}")
def test_designs_are_balanced_and_orthogonal(design):
    x = design.matrix
    assert (x.sum(axis=0) == 0).all()
    for i, j in itertools.combinations(range(x.shape[1]), 2):
        assert (x[:, i] * x[:, j]).sum() == 0
    rows = design.rows()
    assert len(rows) == design.runs and set(rows[0]) == set(design.factors)
    assert all(isinstance(level, bool) for row in rows for level in row.values())
    assert design.overrides(rows[0])[0].startswith("prompt.components.")


def test_alias_structure_is_named():
    l8 = design_lib.taguchi("L8", COMPONENTS[:7])
    assert l8.resolution() == 3 and l8.runs == 8
    text = "\n".join(l8.describe())
    assert "resolution III" in text and "saturated" in text
    assert l8.aliases()["A"][:3] == ["-BE", "-CF", "-DG"]
    half = design_lib.fractional_factorial(COMPONENTS[:4], "a b c abc")
    assert half.generators == ["D=ABC"] and half.defining_relation() == ["ABCD"] and half.resolution() == 4
    assert half.aliases()["AB"] == ["CD"]
    assert design_lib.full_factorial(COMPONENTS[:3]).resolution() is None
    assert design_lib.taguchi("L16", COMPONENTS[:5]).resolution() == 5
    pb = design_lib.taguchi("L12", COMPONENTS)
    assert not pb.is_regular() and pb.partial_aliases()
    with pytest.raises(design_lib.DesignError):
        design_lib.taguchi("L8", COMPONENTS)  # eight factors do not fit seven columns


def test_the_analysis_recovers_known_main_effects():
    factors = COMPONENTS[:4]
    design = design_lib.taguchi("L8", factors)
    true = {"system": 3.0, "context": -2.0, "reasoning": 1.0, "inject_keywords": 0.0}  # the last one is null
    rng = np.random.default_rng(0)
    rows = []
    for seed in range(3):
        for i, levels in enumerate(design.matrix):
            y = 50 + sum(true[f] / 2 * v for f, v in zip(factors, levels, strict=True)) + rng.normal(0, 0.3)
            rows.append(
                {
                    "job": f"{seed}-{i}",
                    "seed": seed,
                    **dict(zip(factors, levels, strict=True)),
                    "y": y,
                    "direction_scores": [y - 1, y + 1],
                }
            )
    runs = pd.DataFrame(rows)
    model, kept, pooled = design_analysis.fit(runs, factors)
    assert not pooled
    effects = design_analysis.main_effects(runs, factors, model, maximize=True).set_index("factor")
    assert list(effects.index[:3]) == ["system", "context", "reasoning"]  # ranked by |effect|
    for factor in ("system", "context", "reasoning"):
        assert np.sign(effects.loc[factor, "effect"]) == np.sign(true[factor])
        assert effects.loc[factor, "ci_low"] <= true[factor] <= effects.loc[factor, "ci_high"]
    anova = design_analysis.anova_table(runs, model, kept, pooled).set_index("source")
    assert anova.loc["system", "p"] < 0.001 and anova.loc["inject_keywords", "p"] > 0.05
    assert anova["percent"].sum() == pytest.approx(100)
    sn = design_analysis.sn_effects(design_analysis.sn_table(runs, factors, True), factors).set_index("factor")
    assert sn.loc["system", "delta"] > 0 and sn.loc["context", "delta"] < 0
    assert design_analysis.signal_to_noise([10.0, 10.0], maximize=True) == pytest.approx(20.0)
    assert design_analysis.signal_to_noise([0.1, 0.1], maximize=False) == pytest.approx(20.0)


# ---------------------------------------------------------------------------------------------------- a real design

FACTORS = ["system", "context", "reasoning"]
FAST = [
    *(line for line in TINY_RUN if not line.startswith(("trainer.max_steps", "trainer.eval_steps", "data.max_"))),
    "trainer.max_steps=1",
    "trainer.eval_steps=1",
    "trainer.eval_on_start=false",
    "trainer.save_adapter=false",
    "eval.enabled=false",
    "eval.objective=eval_loss",
    "data.max_train_records=4",
    "data.max_val_records=2",
    f"hydra.sweeper.design.factors=[{','.join(FACTORS)}]",
]


def design_command(sweep_dir: Path) -> list[str]:
    # Heartbeats every second: a killed sweep's trial is stale after two, not after a minute.
    return [
        sys.executable,
        "-m",
        "sftlab.train",
        "-m",
        "design=l8",
        *FAST,
        f"hydra.sweep.dir={sweep_dir}",
        "hydra.sweeper.heartbeat_interval=1",
    ]


def complete_trials(db: Path) -> int:
    if not db.is_file():
        return 0
    try:
        with sqlite3.connect(db, timeout=1) as connection:
            return connection.execute("SELECT COUNT(*) FROM trials WHERE state = 'COMPLETE'").fetchone()[0]
    except sqlite3.Error:
        return 0


def test_a_design_point_whose_process_died_before_its_suggestions_is_neither_doubled_nor_lost(tmp_path):
    """A sweep killed between ``study.ask()`` and the trial's suggestions leaves its design point RUNNING with no
    parameters: the resumed sweep must not enqueue the point again, and must retry it once the trial is found stale."""
    from hydra_plugins.sftlab_optuna_sweeper._slots import enqueue_fixed, retry_stale

    study = optuna.create_study(study_name="design", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    points = [{"a": True, "seed": 42}, {"a": False, "seed": 42}]
    enqueue_fixed(study, points)
    study.ask()  # pops the first point; its process dies before suggesting anything
    dead = study.get_trials()[0]
    assert dead.state == TrialState.RUNNING and dead.params == {}

    enqueue_fixed(study, points)  # the resumed sweep
    waiting = [t for t in study.get_trials() if t.state == TrialState.WAITING]
    assert [t.system_attrs["fixed_params"] for t in waiting] == [points[1]]

    study.tell(dead.number, state=TrialState.FAIL)  # as optuna.storages.fail_stale_trials does, then its callback
    retry_stale(study, study.get_trials()[0])
    retries = [t for t in study.get_trials() if t.user_attrs.get("retry_of") == dead.number]
    assert len(retries) == 1 and retries[0].state == TrialState.WAITING
    assert retries[0].system_attrs["fixed_params"] == points[0]


def test_a_design_point_whose_process_died_between_two_suggestions_is_retried_whole(tmp_path):
    """Killed after suggesting part of its point: the resumed sweep neither enqueues the point again nor retries the
    part (seen under load: the retry of the part ran as a surplus copy of a point enqueued twice)."""
    from hydra_plugins.sftlab_optuna_sweeper._slots import enqueue_fixed, retry_stale

    study = optuna.create_study(study_name="design", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    points = [{"a": True, "b": False, "seed": 42}, {"a": False, "b": True, "seed": 42}]
    enqueue_fixed(study, points)
    dying = study.ask()
    dying.suggest_categorical("a", [False, True])  # its process dies before suggesting b and seed
    dead = study.get_trials()[0]
    assert dead.params == {"a": True}

    enqueue_fixed(study, points)  # the resumed sweep: the dead trial still holds its whole point
    waiting = [t for t in study.get_trials() if t.state == TrialState.WAITING]
    assert [t.system_attrs["fixed_params"] for t in waiting] == [points[1]]

    study.tell(dead.number, state=TrialState.FAIL)
    retry_stale(study, study.get_trials()[0])
    retries = [t for t in study.get_trials() if t.user_attrs.get("retry_of") == dead.number]
    assert len(retries) == 1 and retries[0].system_attrs["fixed_params"] == points[0]


def test_a_design_enqueued_twice_by_processes_started_together_runs_each_point_once(tmp_path):
    from optuna.storages import RDBStorage

    from hydra_plugins.sftlab_optuna_sweeper._slots import claim

    storage = RDBStorage(f"sqlite:///{tmp_path / 'optuna.db'}")
    study = optuna.create_study(study_name="design", storage=storage)
    points = [{"a": a, "b": b, "seed": 42} for a in (False, True) for b in (False, True)]
    for point in points:  # two processes, each enqueuing the whole design, interleaved
        study.enqueue_trial(point)
        study.enqueue_trial(point)
    ran = []
    while (trial := claim(study, storage, len(points), fixed=True)) is not None:
        ran.append(
            {
                **{n: trial.suggest_categorical(n, [False, True]) for n in "ab"},
                "seed": trial.suggest_int("seed", 42, 42),
            }
        )
        study.tell(trial, 1.0)
    assert sorted(ran, key=str) == sorted(points, key=str)
    trials = study.get_trials()
    surplus = [t for t in trials if t.user_attrs.get("surplus")]
    assert len(surplus) == 4 and all(t.state == TrialState.FAIL for t in surplus)
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]


@pytest.mark.slow
def test_an_interrupted_l8_design_resumes_without_redoing_rows_and_is_analysed(tmp_path):
    sweep_dir = tmp_path / "l8"
    env = {**os.environ, "HYDRA_FULL_ERROR": "0"}
    # Kill the sweep (its whole process group) once two rows are done: a trial is left RUNNING, as by a lost machine.
    first = subprocess.Popen(
        design_command(sweep_dir),
        cwd=ROOT,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 240
    while complete_trials(sweep_dir / "optuna.db") < 2 and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    storage = f"sqlite:///{sweep_dir / 'optuna.db'}"
    before = {
        t.number: t.datetime_complete
        for t in optuna.load_study(study_name="design_l8", storage=storage).trials
        if t.state == TrialState.COMPLETE
    }
    assert 2 <= len(before) < 8

    result = subprocess.run(design_command(sweep_dir), cwd=ROOT, env=env, capture_output=True, text=True, timeout=400)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    trials = optuna.load_study(study_name="design_l8", storage=storage).trials
    for number, completed in before.items():
        assert trials[number].datetime_complete == completed  # finished rows were not redone
    design, data = design_lib.read(sweep_dir)
    assert data["seeds"] == [42] and design.name == "L8(2^7)" and design.factors == FACTORS
    points = {tuple(sorted(p.items())) for p in design.points([42])}
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(done) == 8 and {tuple(sorted(t.params.items())) for t in done} == points
    assert all(t.state in (TrialState.COMPLETE, TrialState.FAIL) for t in trials)
    retried = {t.user_attrs["retry_of"] for t in trials if "retry_of" in t.user_attrs}
    failed = [
        (t.number, t.user_attrs, t.system_attrs.get("fixed_params")) for t in trials if t.state == TrialState.FAIL
    ]
    assert all(number in retried for number, _, _ in failed), failed  # the killed one, retried

    analysis = design_analysis.analyse(sweep_dir)
    assert analysis is not None and analysis.objective == "eval_loss" and analysis.direction == "minimize"
    assert len(analysis.runs) == 8 and set(analysis.effects["factor"]) == set(FACTORS)
    assert set(analysis.best) == set(FACTORS) and np.isfinite(analysis.predicted)
    assert "p" in analysis.anova.columns and len(analysis.sn) == 8
    assert "## Factorial design" in render_design(analysis)
    assert all(path.is_file() for path in write_design(analysis))
    commands = design_cli.confirm_commands(analysis, [42])
    assert "-m" in commands[0] and "seed=42" in commands[0] and not any(c.startswith("design=") for c in commands[0])
    assert sum(c.startswith("prompt.components.") for c in commands[0]) == len(FACTORS)
