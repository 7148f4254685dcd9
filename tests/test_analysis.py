"""The report on any multirun: group overrides shown by their choice, every objective of a multi-objective run with
its Pareto front, and figures whose legends and labels lie inside them.

Job dirs are written as train/evaluate write them (``test_report.write_job``), plus the files a group override and
a multi-objective run add: ``.hydra/overrides.yaml`` with ``trainer=quick``, ``.hydra/hydra.yaml``'s choices and
``metrics.json``'s costs.
"""

from __future__ import annotations

import itertools
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from sftlab import rundir
from sftlab.analysis import design_stats, plots
from sftlab.analysis.pareto import pareto_front
from sftlab.analysis.report import build_report
from sftlab.analysis.write import write_report
from sftlab.commands import design as design_cli
from sftlab.commands.report import main
from sftlab.errors import SftlabError
from test_report import read_csv, write_job

QUICK_TRAINER = {"max_steps": 10, "per_device_train_batch_size": 4, "warmup_steps": 1, "max_seq_length": 512}


def add_run_files(job: Path, overrides: list[str], trainer: dict, choices: dict | None = None, **metrics) -> None:
    """What a real run adds to ``write_job``'s dir: a whole trainer group, its command line, its choices, costs."""
    config = yaml.safe_load((job / rundir.HYDRA_CONFIG).read_text(encoding="utf-8"))
    config["trainer"] = {**config["trainer"], **trainer}
    (job / rundir.HYDRA_CONFIG).write_text(yaml.safe_dump(config), encoding="utf-8")
    old = yaml.safe_load((job / rundir.HYDRA_OVERRIDES).read_text(encoding="utf-8"))
    (job / rundir.HYDRA_OVERRIDES).write_text(yaml.safe_dump([*old, *overrides]), encoding="utf-8")
    if choices is not None:
        settings = {"hydra": {"runtime": {"choices": choices}}}
        (job / rundir.HYDRA_SETTINGS).write_text(yaml.safe_dump(settings), encoding="utf-8")
    if metrics:
        rundir.write_json(job / rundir.METRICS, metrics)


@pytest.fixture
def quick_sweep(tmp_path) -> Path:
    """``make sweep``'s shape: ``trainer=quick`` on every job, a learning rate and a prompt format per job."""
    grid = itertools.product(["reasoning_tags", "alpaca"], [0.0001, 0.001])
    for num, (prompt, lr) in enumerate(grid):
        job = write_job(tmp_path, num, prompt, 1, 40.0 + 2 * num, config={"trainer.learning_rate": lr})
        add_run_files(job, ["trainer=quick", "experiment=cpu_quick"], QUICK_TRAINER, {"trainer": "quick"})
    return tmp_path


def test_a_group_override_on_every_job_is_no_varying_parameter(quick_sweep):
    assert main([str(quick_sweep)]) == 0
    rows = read_csv(quick_sweep / rundir.REPORT_CSV)
    assert {row["system"] for row in rows} == {
        f"{prompt} [trainer.learning_rate={lr}]"
        for prompt in ("reasoning_tags", "alpaca")
        for lr in ("0.0001", "0.001")
    }
    assert list(rows[0]) == [
        "system", "format", "direction", "runs", "seeds",
        "bleu_mean", "bleu_std", "chrf_mean", "chrf_std", "chrf_pp_mean", "chrf_pp_std",
        "bleu_best", "chrf_best", "chrf_pp_best", "chrf_p", "chrf_vs_baseline",
    ]  # fmt: skip
    markdown = (quick_sweep / rundir.REPORT_MD).read_text(encoding="utf-8")
    assert "Varying hyperparameters: `trainer.learning_rate`." in markdown
    assert "trainer=" not in markdown and "max_steps" not in markdown and "experiment=" not in markdown
    assert (quick_sweep / "objective_vs_trainer_learning_rate.png").is_file()
    assert not (quick_sweep / "objective_vs_trainer.png").exists()


def test_a_group_whose_choice_differs_is_shown_by_its_choice(tmp_path):
    """``trainer=quick`` against jobs left at the default group, known from Hydra's recorded choices alone; the
    trainer's max_seq_length differs with the choice and is no parameter of its own."""
    for num, seed in enumerate((1, 2)):
        job = write_job(tmp_path, num, "reasoning_tags", seed, 40.0 + seed)
        add_run_files(job, ["trainer=quick"], QUICK_TRAINER, {"trainer": "quick"})
    for num, seed in enumerate((1, 2), start=2):
        job = write_job(tmp_path, num, "reasoning_tags", seed, 30.0 + seed)
        add_run_files(job, [], {"max_steps": 300}, {"trainer": "default"})
    assert main([str(tmp_path)]) == 0
    macro = {row["system"]: row for row in read_csv(tmp_path / rundir.REPORT_CSV) if row["direction"] == "macro"}
    assert set(macro) == {"reasoning_tags [trainer=quick]", "reasoning_tags [trainer=default]"}
    assert macro["reasoning_tags [trainer=quick]"]["seeds"] == "1 2"  # the two seeds are one system
    sweep = (tmp_path / rundir.REPORT_MD).read_text(encoding="utf-8").split("## Sweep")[1]
    assert "| job | format | seed | trainer | chrf |" in sweep and "| 1 | reasoning_tags | 2 | quick | 37 |" in sweep
    assert (tmp_path / "objective_vs_trainer.png").is_file()


def test_an_unnamed_group_without_choices_gets_a_fingerprint_not_yaml(tmp_path):
    for num, steps in enumerate((10, 300)):
        job = write_job(tmp_path, num, "alpaca", 1, 40.0 + num)
        add_run_files(job, [], {"max_steps": steps})
        (job / rundir.HYDRA_OVERRIDES).write_text(yaml.safe_dump(["trainer=x"] if num else []), encoding="utf-8")
    report = build_report(tmp_path)
    assert report.hparams == ["trainer"]
    systems = sorted(report.scores.summary["system"].unique())
    assert systems[0].startswith("alpaca [trainer=#") and systems[1] == "alpaca [trainer=x]"
    assert all("\n" not in system and "{" not in system for system in systems)


# ---------------------------------------------------------------------------------------------------- figures


def inside(fig, artist) -> bool:
    """The artist's extent lies within the figure's, to a pixel, laid out as saving lays it out."""
    fig.draw_without_rendering()
    box, frame = artist.get_window_extent(), fig.bbox
    return box.x0 >= frame.x0 - 1 and box.y0 >= frame.y0 - 1 and box.x1 <= frame.x1 + 1 and box.y1 <= frame.y1 + 1


def test_the_format_chart_keeps_a_long_legend_inside_the_figure(tmp_path):
    from matplotlib import image

    systems = [f"format_{i} [lora.r={8 * i}, trainer.learning_rate=0.000{i}, trainer=quick]" for i in range(1, 7)]
    summary = pd.DataFrame(
        [
            {"system": system, "direction": direction, "chrf_mean": 40.0 + i, "chrf_std": 1.0}
            for i, system in enumerate(systems)
            for direction in ("ja-en", "en-ja", "zh-en", "macro")
        ]
    )
    path = tmp_path / "chrf_by_format.png"
    fig = plots.plot_by_format(summary, "chrf", path)
    (legend,) = fig.legends
    assert len(legend.get_texts()) == len(systems) and inside(fig, legend)
    assert all("\n" in text.get_text() for text in legend.get_texts())  # long names wrapped
    assert fig.axes[0].get_window_extent().x1 < legend.get_window_extent().x0  # beside the bars, not over them
    pixels = image.imread(path)  # saved as drawn: the PNG is the figure's own size
    assert pixels.shape[:2] == tuple(round(inches * plots.DPI) for inches in fig.get_size_inches()[::-1])


def test_long_category_labels_are_wrapped_rotated_and_inside(tmp_path):
    choices = [f"a_long_config_choice_{i}_with_more_words" for i in range(6)]
    table = pd.DataFrame({"job": [str(i) for i in range(6)], "format": ["alpaca"] * 6, "trainer": choices})
    table["chrf"] = np.arange(6, dtype=float)
    fig = plots.plot_objective(table, "trainer", ["chrf"], tmp_path / "objective_vs_trainer.png")
    labels = fig.axes[0].get_xticklabels()
    assert [label.get_text().replace("\n", "") for label in labels] == choices
    assert all(label.get_rotation() == 30 and inside(fig, label) for label in labels)
    assert inside(fig, fig.legends[0])


# ---------------------------------------------------------------------------------------------------- Pareto


def test_pareto_front_respects_each_direction_and_skips_missing_values():
    values = pd.DataFrame(
        {
            "chrf": [50.0, 45.0, 40.0, 50.0, 30.0, np.nan, 45.0],  # maximised
            "train_seconds": [100.0, 60.0, 20.0, 120.0, 25.0, 1.0, 60.0],  # minimised
        }
    )
    front = pareto_front(values, ["maximize", "minimize"])
    # 3 is beaten by 0 (same chrf, slower); 4 by 2; 5 has no chrf; 1 and 6 tie and neither beats the other.
    assert front.tolist() == [True, True, True, False, False, False, True]
    assert pareto_front(values, ["minimize", "minimize"]).tolist() == [False, False, True, False, True, False, False]


@pytest.fixture
def two_objectives(tmp_path) -> Path:
    """chrF against training time: jobs 0, 1, 2 trade one for the other; job 3 is beaten by job 1 on both."""
    points = [(50.0, 100.0), (45.0, 60.0), (40.0, 20.0), (42.0, 80.0)]
    for num, (chrf, seconds) in enumerate(points):
        job = write_job(
            tmp_path, num, "alpaca", 1, chrf + 5, config={"eval.objective": ["chrf", "train_seconds"], "lora.r": num}
        )
        add_run_files(job, ["trainer=quick"], QUICK_TRAINER, {"trainer": "quick"}, train_runtime_s=seconds)
    return tmp_path


def test_a_multi_objective_report_shows_every_objective_and_marks_the_front(two_objectives):
    report = build_report(two_objectives)
    assert report.objectives == ["chrf", "train_seconds"]
    assert report.sweep["job"].tolist() == ["0", "1", "3", "2"]  # by chrF, the first objective, best first
    assert report.sweep.set_index("job")["pareto_front"].to_dict() == {"0": True, "1": True, "3": False, "2": True}
    written = write_report(report)
    markdown = (two_objectives / rundir.REPORT_MD).read_text(encoding="utf-8")
    sweep = markdown.split("## Sweep")[1].split("\n## ")[0]
    assert "Objectives: `chrf` (maximized), `train_seconds` (minimized)" in sweep
    assert "3 of 4 (jobs 0, 1, 2)" in sweep
    assert "| job | format | seed | lora.r | chrf | train_seconds | pareto_front |" in sweep
    assert "| 0 | alpaca | 1 | 0 | 50 | 100 | yes |" in sweep and "| 3 | alpaca | 1 | 3 | 42 | 80 |  |" in sweep
    pareto = two_objectives / rundir.REPORT_PARETO_PLOT
    assert pareto in written and f"]({rundir.REPORT_PARETO_PLOT})" in markdown


def test_the_pareto_plot_draws_the_front_inside_the_figure(two_objectives):
    report = build_report(two_objectives)
    fig = plots.plot_pareto(report.sweep, report.objectives, two_objectives / rundir.REPORT_PARETO_PLOT)
    ax = fig.axes[0]
    (front_line,) = ax.get_lines()
    assert front_line.get_xdata().tolist() == [40.0, 45.0, 50.0]  # the front, by chrF
    assert front_line.get_ydata().tolist() == [20.0, 60.0, 100.0]
    assert sorted(text.get_text() for text in ax.texts) == ["job 0", "job 1", "job 2"]
    assert inside(fig, fig.legends[0]) and "train_seconds (minimized)" in ax.get_ylabel()


def test_a_design_with_several_objectives_analyses_the_first_and_says_so(tmp_path):
    levels = list(itertools.product([False, True], repeat=2))
    for num, ((system, context), seed) in enumerate(itertools.product(levels, (1, 2))):
        chrf = 40.0 + 6 * system - 2 * context + seed
        job = write_job(tmp_path, num, "alpaca", seed, chrf, config={"eval.objective": ["chrf", "train_seconds"]})
        config = yaml.safe_load((job / rundir.HYDRA_CONFIG).read_text(encoding="utf-8"))
        config["prompt"]["components"] = {"system": system, "context": context}
        (job / rundir.HYDRA_CONFIG).write_text(yaml.safe_dump(config), encoding="utf-8")
        rundir.write_json(job / rundir.METRICS, {"train_runtime_s": 10.0 + num})
    analysis = design_stats.analyse(tmp_path)
    assert analysis is not None and analysis.objective == "chrf" and analysis.direction == "maximize"
    assert analysis.best == {"system": True, "context": False}
    effects = analysis.effects.set_index("factor")["effect"]
    assert effects["system"] == pytest.approx(6.0) and effects["context"] == pytest.approx(-2.0)
    assert any(
        "several objectives (chrf, train_seconds)" in note and "uses the first, chrf" in note for note in analysis.notes
    )
    assert main([str(tmp_path)]) == 0
    markdown = (tmp_path / rundir.REPORT_MD).read_text(encoding="utf-8")
    assert "## Factorial design" in markdown and "uses the first, chrf" in markdown
    assert (tmp_path / rundir.DESIGN_EFFECTS_CSV).is_file() and (tmp_path / rundir.DESIGN_EFFECTS_PLOT).is_file()


# ---------------------------------------------------------------------------------------------------- no scores


def write_trained_job(
    root: Path, num: int, objective: list[str] | str, failure: str | None = None, seed: int = 1, **config
) -> Path:
    """A job of ``eval.enabled=false``: config, overrides and, unless it failed, ``metrics.json`` as training writes
    it (``train_runtime_s`` for ``train_seconds``; ``eval_loss`` only when given)."""
    values = {key: config.pop(key) for key in ("eval_loss", "train_runtime_s") if key in config}
    job = write_job(root, num, "alpaca", seed, config={"eval.enabled": False, "eval.objective": objective, **config})
    if failure is not None:
        rundir.write_json(job / rundir.FAILURE, {"type": "SftlabError", "message": failure, "user_error": True})
    else:
        rundir.write_json(job / rundir.METRICS, {"train_loss": 2.0, "steps": 10, "peak_memory_gib": 1.5, **values})
    return job


@pytest.fixture
def unscored_sweep(tmp_path) -> Path:
    """``eval.enabled=false eval.objective=[eval_loss,train_seconds] lora.r=4,8,16,32``: job 3 is beaten by job 1 on
    both objectives; job 4 failed; job 5 is still training."""
    objective = ["eval_loss", "train_seconds"]
    points = [(2.0, 100.0), (2.5, 60.0), (3.0, 20.0), (2.6, 80.0)]
    for num, (loss, seconds) in enumerate(points):
        write_trained_job(tmp_path, num, objective, **{"lora.r": 4 * 2**num}, eval_loss=loss, train_runtime_s=seconds)
    write_trained_job(tmp_path, 4, objective, failure="CUDA out of memory", **{"lora.r": 64})
    write_job(tmp_path, 5, "alpaca", 1, config={"eval.enabled": False, "eval.objective": objective, "lora.r": 128})
    return tmp_path


def test_a_multirun_without_translation_scores_reports_its_objectives(unscored_sweep, capsys):
    assert main([str(unscored_sweep)]) == 0
    markdown = (unscored_sweep / rundir.REPORT_MD).read_text(encoding="utf-8")
    assert "6 runs found: 0 evaluated, 4 trained with evaluation disabled, 1 unfinished, 1 failed." in markdown
    assert "No job has translation scores (eval.json), so the score tables, the significance tests" in markdown
    assert "## chrF" not in markdown and "## Significance" not in markdown and "Test set:" not in markdown
    sweep = markdown.split("## Sweep")[1].split("\n## ")[0]
    assert "Objectives: `eval_loss` (minimized), `train_seconds` (minimized)" in sweep
    assert "3 of 4 (jobs 0, 1, 2)" in sweep
    table = [line for line in sweep.splitlines() if line.startswith("| ")]
    assert table == [
        "| job | format | seed | lora.r | eval_loss | train_seconds | pareto_front |",
        "| 0 | alpaca | 1 | 4 | 2 | 100 | yes |",
        "| 1 | alpaca | 1 | 8 | 2.5 | 60 | yes |",
        "| 3 | alpaca | 1 | 32 | 2.6 | 80 |  |",
        "| 2 | alpaca | 1 | 16 | 3 | 20 | yes |",
    ]  # best first by eval_loss; the failed and the unfinished job are listed below, not here
    assert "| 4 | alpaca | 1 | SftlabError | CUDA out of memory |" in markdown.split("## Failed runs")[1]
    unfinished = markdown.split("## Unfinished runs")[1].split("\n## ")[0]
    assert "| 5 | alpaca | 1 | evaluation disabled and no metrics.json or failure.json (still training" in unfinished
    for name in (rundir.REPORT_PARETO_PLOT, "objective_vs_lora_r.png"):
        assert (unscored_sweep / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"]({name})" in markdown
    for name in (rundir.REPORT_CSV, rundir.SIGNIFICANCE_CSV, "chrf_by_format.png"):
        assert not (unscored_sweep / name).exists()
    out = capsys.readouterr().out
    assert "eval_loss, train_seconds by run" in out and "No job has translation scores" in out
    assert "failed: job 4 (alpaca): CUDA out of memory" in out and "missing: job 5 (alpaca)" in out
    assert "report.csv" not in out.split("written:")[1]


def test_one_objective_without_scores_is_still_a_sweep_table(tmp_path):
    """``eval.objective=eval_loss`` over seeds alone: no varying parameter, no Pareto front, a table all the same."""
    for num, loss in enumerate((2.4, 2.2)):
        write_trained_job(tmp_path, num, "eval_loss", seed=num + 1, eval_loss=loss)
    report = build_report(tmp_path)
    assert report.scores is None and report.hparams == [] and report.objectives == ["eval_loss"]
    assert report.sweep["job"].tolist() == ["1", "0"] and "pareto_front" not in report.sweep
    write_report(report)
    assert "Objective: `eval_loss` (minimized); best first." in (tmp_path / rundir.REPORT_MD).read_text("utf-8")


def test_neither_scores_nor_an_objective_value_is_one_line(tmp_path, capsys):
    for num in (0, 1):  # trained, but no validation split: metrics.json has no eval_loss
        write_trained_job(tmp_path, num, "eval_loss")
    write_trained_job(tmp_path, 2, "eval_loss", failure="no validation records")
    assert main([str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err == (
        f"error: {tmp_path}: 3 runs, none evaluated and none with an objective value in metrics.json (1 failed, "
        "2 trained without an objective value, 0 unfinished); job 2: no validation records\n"
    )
    assert not (tmp_path / rundir.REPORT_MD).exists()


# ---------------------------------------------------------------------------------------------------- designs

LEVELS = list(itertools.product([False, True], repeat=2))  # (system, context)


def set_components(job: Path, system: bool, context: bool) -> None:
    config = yaml.safe_load((job / rundir.HYDRA_CONFIG).read_text(encoding="utf-8"))
    config["prompt"]["components"] = {"system": system, "context": context}
    (job / rundir.HYDRA_CONFIG).write_text(yaml.safe_dump(config), encoding="utf-8")


def design_chrf(system: bool, context: bool, seed: int) -> float:
    """ja-en chrF of a run (en-ja is 10 lower, BLEU half of each: ``write_job``): system helps, context hurts."""
    return 40.0 + 6 * system - 2 * context + seed


@pytest.fixture
def scored_design(tmp_path) -> Path:
    """A hand-made 2^2 over ``prompt.components`` crossed with seeds 1, 2, optimising chrF."""
    for num, ((system, context), seed) in enumerate(itertools.product(LEVELS, (1, 2))):
        set_components(write_job(tmp_path, num, "alpaca", seed, design_chrf(system, context, seed)), system, context)
    return tmp_path


def larger_the_better(values: list[float]) -> float:
    return float(-10 * np.log10(np.mean(1 / np.asarray(values) ** 2)))


def bleu_values(levels: tuple[bool, bool], seeds: tuple[int, ...]) -> list[float]:
    """Every direction's BLEU of a row's runs: half the ja-en chrF, and half the en-ja one (10 lower)."""
    return [value / 2 for seed in seeds for value in (design_chrf(*levels, seed), design_chrf(*levels, seed) - 10)]


def test_the_sn_metric_picks_the_per_direction_score(scored_design):
    chrf = design_stats.analyse(scored_design)
    assert chrf.sn_metric == "chrf" and chrf.sn_source == "chrf per direction, over a row's seeds and directions"
    bleu = design_stats.analyse(scored_design, sn_metric="bleu")
    assert bleu.objective == "chrf" and bleu.best == {"system": True, "context": False}  # the means: chrF still
    expected = {levels: larger_the_better(bleu_values(levels, (1, 2))) for levels in LEVELS}
    sn = {(row.system > 0, row.context > 0): row.sn for row in bleu.sn.itertuples()}
    assert sn == pytest.approx(expected) and sn != pytest.approx(
        {(row.system > 0, row.context > 0): row.sn for row in chrf.sn.itertuples()}
    )
    grand = np.mean(list(expected.values()))
    system_true = np.mean([expected[(True, c)] for c in (False, True)])
    context_false = np.mean([expected[(s, False)] for s in (False, True)])
    assert bleu.predicted_sn == pytest.approx(grand + (system_true - grand) + (context_false - grand))
    with pytest.raises(SftlabError, match="unknown S/N metric 'ter'"):
        design_stats.analyse(scored_design, sn_metric="ter")


def test_confirm_metric_measures_the_sn_of_the_confirmation_runs(scored_design, monkeypatch, capsys):
    """``confirm --metric bleu --run``: the training subprocess is replaced by one writing the run dir train and
    evaluate would write, at the levels and seed of its command line."""

    def train(command, check):
        args = dict(part.split("=", 1) for part in command[3:])
        run_dir = Path(args["hydra.run.dir"])
        levels = (args["prompt.components.system"] == "true", args["prompt.components.context"] == "true")
        seed = int(args["seed"])
        write_job(run_dir.parent, run_dir.name, "alpaca", seed, design_chrf(*levels, seed))
        return subprocess.CompletedProcess(command, 0)

    monkeypatch.setattr(design_cli.subprocess, "run", train)
    assert design_cli.main(["confirm", str(scored_design), "--metric", "bleu", "--run"]) == 0
    analysis = design_stats.analyse(scored_design, sn_metric="bleu")
    out = capsys.readouterr().out
    assert "predicted best: system=true, context=false" in out
    assert f"predicted S/N: {analysis.predicted_sn:.2f} dB (larger-the-better, bleu per direction" in out
    measured_sn = larger_the_better(bleu_values((True, False), (1, 2)))
    assert f"measured S/N: {measured_sn:.2f} dB (predicted {analysis.predicted_sn:.2f} dB)" in out
    record = rundir.read_json(scored_design / rundir.DESIGN_CONFIRM_DIR / rundir.DESIGN_CONFIRM)
    assert record["sn_metric"] == "bleu" and record["measured_sn"] == pytest.approx(measured_sn)
    assert record["measured"] == [42.0, 43.0]  # macro chrF (ja-en and en-ja) of seeds 1 and 2 at the best levels
    assert "confirmed: the measured value lies within the confirmation interval" in out


@pytest.fixture
def loss_design(tmp_path) -> Path:
    """The 2^2 run with ``eval.enabled=false eval.objective=eval_loss``: system lowers the loss, context raises it."""
    for num, ((system, context), seed) in enumerate(itertools.product(LEVELS, (1, 2))):
        loss = 3.0 - 0.4 * system + 0.2 * context + 0.05 * seed
        set_components(write_trained_job(tmp_path, num, "eval_loss", seed=seed, eval_loss=loss), system, context)
    return tmp_path


def test_a_design_without_scores_is_analysed_on_its_loss(loss_design, capsys):
    assert main([str(loss_design)]) == 0
    markdown = (loss_design / rundir.REPORT_MD).read_text(encoding="utf-8")
    assert "No job has translation scores" in markdown and "## Factorial design" in markdown
    assert "Objective `eval_loss` (minimized), 8 runs" in markdown
    assert "### Signal-to-noise (smaller-the-better, dB, per row: eval_loss over a row's seeds)" in markdown
    assert "`system=true, context=false`: predicted eval_loss 2.675" in markdown
    analysis = design_stats.analyse(loss_design)
    row = analysis.sn[(analysis.sn["system"] > 0) & (analysis.sn["context"] < 0)].iloc[0]
    assert row["sn"] == pytest.approx(-10 * np.log10(np.mean(np.array([2.65, 2.70]) ** 2)))
    assert (loss_design / rundir.DESIGN_EFFECTS_CSV).is_file() and (loss_design / rundir.DESIGN_EFFECTS_PLOT).is_file()
    # An S/N on a score needs scores: one line, exit 1.
    assert design_cli.main(["confirm", str(loss_design), "--metric", "bleu"]) == 1
    err = capsys.readouterr().err
    assert err == (
        "error: the S/N ratio on bleu needs each run's per-direction bleu in eval.json; jobs 0, 1, 2, 3, 4, 5, 6, 7 "
        "have none (evaluation disabled?)\n"
    )
