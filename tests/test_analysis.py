"""The report on any multirun: group overrides shown by their choice, every objective of a multi-objective run with
its Pareto front, and figures whose legends and labels lie inside them.

Job dirs are written as train/evaluate write them (``test_report.write_job``), plus the files a group override and
a multi-objective run add: ``.hydra/overrides.yaml`` with ``trainer=quick``, ``.hydra/hydra.yaml``'s choices and
``metrics.json``'s costs.
"""

from __future__ import annotations

import itertools
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
from sftlab.commands.report import main
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
    systems = sorted(report.summary["system"].unique())
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
