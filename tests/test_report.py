"""``sftlab.report`` on synthetic multirun dirs: exact means and stds, bold, significance, plots, bad input.

Each job dir is written the way train/evaluate write it (``.hydra/config.yaml``, ``eval.json``,
``predictions.jsonl``, ``failure.json``), with scores chosen by hand so the expected numbers are known exactly.
No model, no GPU, no network.
"""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, run_module
from sftlab import rundir
from sftlab.analysis.significance import paired_bootstrap
from sftlab.commands.report import main
from sftlab.evaluation.scoring import score_predictions

SHA = "a" * 64
DIRECTIONS = {"ja-en": ("ja", "en"), "en-ja": ("en", "ja")}
WORDS = ["river", "bright", "morning", "quietly", "station", "garden", "letter", "winter", "window", "careful"]
JA_WORDS = ["川", "明るい", "朝", "静かに", "駅", "庭", "手紙", "冬", "窓", "慎重", "音楽", "夕方"]

# chrF per format and seed for each direction: reasoning_tags 40/42/44 (mean 42, std 2), alpaca 30/30/30
# (mean 30, std 0), no_system 50/53/56 (mean 53, std 3); en-ja is the same minus 10.
CHRF = {"reasoning_tags": [40.0, 42.0, 44.0], "alpaca": [30.0, 30.0, 30.0], "no_system": [50.0, 53.0, 56.0]}
SEEDS = [1, 2, 3]


def references(direction: str) -> list[str]:
    target = DIRECTIONS[direction][1]
    words = JA_WORDS if target == "ja" else WORDS
    joiner = "" if target == "ja" else " "
    return [joiner.join(words[(i * 7 + k * 5) % len(words)] for k in range(6 + i % 4)) for i in range(24)]


def hypotheses(kind: str, direction: str) -> list[str]:
    """``perfect``: the references; ``garbage``: unrelated text of similar length."""
    refs = references(direction)
    if kind == "perfect":
        return refs
    return [f"zq{i} xv kk" for i in range(len(refs))]


def write_job(
    root: Path,
    num: int | str,
    prompt: str,
    seed: int,
    chrf: float | None = None,
    kind: str = "garbage",
    sha: str = SHA,
    config: dict | None = None,
    predictions: bool = True,
    rescore: bool = False,
) -> Path:
    """One job dir; with ``chrf`` None the job has a config and nothing else (half-finished)."""
    job = root / str(num)
    cfg = {
        "seed": seed,
        "prompt": {"name": prompt},
        "model": {"name": "tiny_random"},
        "lora": {"r": 16, "alpha": 16},
        "trainer": {"learning_rate": 0.0002, "max_seq_length": 2048},
        "eval": {"objective": "chrf", "enabled": True, "bootstrap_resamples": 200},
    }
    for key, value in (config or {}).items():
        section, name = key.split(".")
        cfg[section][name] = value
    (job / rundir.HYDRA_CONFIG).parent.mkdir(parents=True)
    (job / rundir.HYDRA_CONFIG).write_text(yaml.safe_dump(cfg), encoding="utf-8")
    overrides = [f"prompt={prompt}", f"seed={seed}", *(f"{k}={v}" for k, v in (config or {}).items())]
    (job / rundir.HYDRA_OVERRIDES).write_text(yaml.safe_dump(overrides), encoding="utf-8")
    if chrf is None:
        return job
    directions = {}
    rows = []
    for offset, direction in enumerate(DIRECTIONS):
        value = chrf - 10 * offset
        directions[direction] = {
            "pairs": 24,
            "empty": 0,
            "truncated": 0,
            "bleu": value / 2,
            "chrf": value,
            "chrf_pp": value - 1,
            "signatures": {},
        }
        source_lang, target_lang = DIRECTIONS[direction]
        for i, (ref, hyp) in enumerate(zip(references(direction), hypotheses(kind, direction), strict=True)):
            rows.append(
                {
                    "id": f"{direction}-{i}",
                    "direction": direction,
                    "source_lang": source_lang,
                    "target_lang": target_lang,
                    "source": f"source {i}",
                    "reference": ref,
                    "hypothesis": hyp,
                    "raw_generation": hyp,
                    "empty": False,
                    "truncated": False,
                    "prompt": "...",
                }
            )
    macro = {name: sum(d[name] for d in directions.values()) / 2 for name in ("bleu", "chrf", "chrf_pp")}
    scores = {"directions": directions, "macro": macro, "counts": {"pairs": 48, "empty": 0, "truncated": 0}}
    if rescore:  # the real scores of the predictions, as evaluation writes them
        scores = score_predictions(rows)
    rundir.write_json(
        job / rundir.EVAL,
        {
            **scores,
            "test_file": "data/translation_test.jsonl",
            "test_set_sha256": sha,
            "prompt_format": prompt,
            "generation": {"max_new_tokens": 96, "num_beams": 1},
        },
    )
    if predictions:
        rundir.write_jsonl(job / rundir.PREDICTIONS, rows)
    return job


# Hypotheses: the baseline writes garbage, no_system the references (clearly better), alpaca the same garbage as
# the baseline (identical system).
KINDS = {"reasoning_tags": "garbage", "alpaca": "garbage", "no_system": "perfect"}


@pytest.fixture
def multirun(tmp_path) -> Path:
    num = 0
    for prompt, values in CHRF.items():
        for seed, value in zip(SEEDS, values, strict=True):
            write_job(tmp_path, num, prompt, seed, value, KINDS[prompt])
            num += 1
    failed = write_job(tmp_path, num, "no_metadata", 1)
    rundir.write_json(
        failed / rundir.FAILURE,
        {"type": "TrainingFault", "message": "CUDA out of memory at step 12", "user_error": True, "traceback": None},
    )
    write_job(tmp_path, num + 1, "no_metadata", 2)  # half-finished: config only
    broken = write_job(tmp_path, num + 2, "no_metadata", 3)
    (broken / rundir.EVAL).write_text("{truncated", encoding="utf-8")
    return tmp_path


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_means_stds_bold_and_order(multirun, capsys):
    assert main([str(multirun)]) == 0
    rows = {(row["system"], row["direction"]): row for row in read_csv(multirun / "report.csv")}
    assert len(rows) == 9  # 3 formats x (2 directions + macro)
    expected = {"reasoning_tags": (42.0, 2.0), "alpaca": (30.0, 0.0), "no_system": (53.0, 3.0)}
    for prompt, (mean, std) in expected.items():
        ja_en, en_ja, macro = rows[(prompt, "ja-en")], rows[(prompt, "en-ja")], rows[(prompt, "macro")]
        assert float(ja_en["chrf_mean"]) == pytest.approx(mean) and float(ja_en["chrf_std"]) == pytest.approx(std)
        assert float(en_ja["chrf_mean"]) == pytest.approx(mean - 10)
        assert float(en_ja["chrf_std"]) == pytest.approx(std)
        assert float(macro["chrf_mean"]) == pytest.approx(mean - 5)
        assert float(ja_en["bleu_mean"]) == pytest.approx(mean / 2)
        assert float(ja_en["bleu_std"]) == pytest.approx(std / 2)
        assert float(ja_en["chrf_pp_mean"]) == pytest.approx(mean - 1)
        assert ja_en["runs"] == "3" and ja_en["seeds"] == "1 2 3"
        assert (ja_en["chrf_best"] == "True") == (prompt == "no_system")

    markdown = (multirun / "report.md").read_text(encoding="utf-8")
    chrf_section = markdown.split("## chrF (mean ± std over seeds)")[1].split("\n## ")[0]
    table = [line for line in chrf_section.splitlines() if line.startswith("| ") and "---" not in line]
    assert table[0] == "| system | runs | ja-en | en-ja | macro |"
    # best first by macro chrF; the best of each column in bold, nothing else bold
    assert [line.split(" | ")[0][2:] for line in table[1:]] == ["no_system", "reasoning_tags", "alpaca"]
    assert "**53.00 ± 3.00**" in table[1] and "**43.00 ± 3.00**" in table[1] and "**48.00 ± 3.00**" in table[1]
    assert "**" not in table[2] + table[3]
    assert "42.00 ± 2.00" in table[2] and "30.00 ± 0.00" in table[3]
    assert "written:" in capsys.readouterr().out


def test_significance_flags_a_better_system_and_not_an_identical_one(multirun):
    assert main([str(multirun)]) == 0
    tests = read_csv(multirun / "significance.csv")
    assert len(tests) == 2 * 3 * 2  # 2 formats against the baseline x 3 seeds x 2 directions
    for row in tests:
        assert row["baseline"] == "reasoning_tags" and row["metric"] == "chrf"
        if row["system"] == "no_system":
            assert float(row["p_value"]) < 0.05 and float(row["delta"]) > 50
        else:
            assert row["system"] == "alpaca"
            assert float(row["p_value"]) >= 0.05 and float(row["delta"]) == 0

    outcome = {(row["system"], row["direction"]): row for row in read_csv(multirun / "report.csv")}
    assert outcome[("no_system", "ja-en")]["chrf_vs_baseline"] == "better"
    assert outcome[("alpaca", "ja-en")]["chrf_vs_baseline"] == "not significantly different"
    assert outcome[("reasoning_tags", "ja-en")]["chrf_vs_baseline"] == "baseline"

    markdown = (multirun / "report.md").read_text(encoding="utf-8")
    assert "no_system, ja-en: significantly better than reasoning_tags on chrF" in markdown
    assert "alpaca, ja-en: NOT significantly different from reasoning_tags on chrF" in markdown
    assert "alpaca, en-ja: NOT significantly different from reasoning_tags on chrF" in markdown


def test_baseline_option_and_bleu_with_the_japanese_tokenizer(multirun):
    assert main([str(multirun), "--baseline", "no_system", "--metric", "bleu", "--resamples", "100"]) == 0
    tests = read_csv(multirun / "significance.csv")
    assert {row["baseline"] for row in tests} == {"no_system"} and {row["metric"] for row in tests} == {"bleu"}
    assert all(float(row["p_value"]) < 0.05 and float(row["delta"]) < 0 for row in tests)
    markdown = (multirun / "report.md").read_text(encoding="utf-8")
    assert "alpaca, en-ja: significantly worse than no_system on BLEU" in markdown
    assert (multirun / "bleu_by_format.png").is_file()


def test_failed_and_missing_jobs_are_listed(multirun, capsys):
    assert main([str(multirun)]) == 0
    markdown = (multirun / "report.md").read_text(encoding="utf-8")
    assert "12 runs found: 9 evaluated, 2 unfinished, 1 failed." in markdown
    failed = markdown.split("## Failed runs")[1].split("\n## ")[0]
    assert "| 9 | no_metadata | 1 | TrainingFault | CUDA out of memory at step 12 |" in failed
    missing = markdown.split("## Unfinished runs")[1].split("\n## ")[0]
    assert "| 10 | no_metadata | 2 | no eval.json and no failure.json (still running, or killed) |" in missing
    assert "| 11 | no_metadata | 3 | eval.json unreadable (JSONDecodeError: " in missing
    out = capsys.readouterr().out
    assert "failed: job 9 (no_metadata): CUDA out of memory at step 12" in out
    assert "missing: job 10 (no_metadata)" in out


def test_chart_is_a_valid_png(multirun):
    from matplotlib import image

    assert main([str(multirun)]) == 0
    png = multirun / "chrf_by_format.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = image.imread(png)
    assert pixels.shape[0] > 0 and pixels.shape[1] > 0
    assert "![chrf_by_format](chrf_by_format.png)" in (multirun / "report.md").read_text(encoding="utf-8")


def test_one_seed_leaves_the_std_blank(tmp_path):
    write_job(tmp_path, 0, "reasoning_tags", 1, 40.0)
    write_job(tmp_path, 1, "alpaca", 1, 45.0, kind="perfect")
    assert main([str(tmp_path)]) == 0
    rows = {(row["system"], row["direction"]): row for row in read_csv(tmp_path / "report.csv")}
    assert rows[("alpaca", "ja-en")]["chrf_std"] == "" and rows[("alpaca", "ja-en")]["chrf_mean"] == "45.0"
    markdown = (tmp_path / "report.md").read_text(encoding="utf-8")
    chrf_section = markdown.split("## chrF (mean ± std over seeds)")[1].split("\n## ")[0]
    assert "| alpaca | 1 | **45.00** | **35.00** | **40.00** |" in chrf_section
    assert "| reasoning_tags | 1 | 40.00 | 30.00 | 35.00 |" in chrf_section


def test_no_bold_when_every_format_ties(tmp_path):
    write_job(tmp_path, 0, "reasoning_tags", 1, 40.0)
    write_job(tmp_path, 1, "alpaca", 1, 40.0)
    assert main([str(tmp_path)]) == 0
    tables = (tmp_path / "report.md").read_text(encoding="utf-8").split("Cells are")[0]
    assert "**" not in tables and "| alpaca | 1 | 40.00 | 30.00 | 35.00 |" in tables


def test_sweep_plots_objective_per_varying_hyperparameter(tmp_path):
    grid = [(8, 0.0001, 41.0), (16, 0.0002, 44.0), (32, 0.001, 39.0), (16, 0.00005, 36.0)]
    for num, (r, lr, value) in enumerate(grid):
        write_job(tmp_path, num, "reasoning_tags", 42, value, config={"lora.r": r, "trainer.learning_rate": lr})
    best = {"name": "optuna", "best_params": {"lora.r": 16, "trainer.learning_rate": 0.0002}, "best_value": 44.0}
    (tmp_path / "optimization_results.yaml").write_text(yaml.safe_dump(best), encoding="utf-8")
    assert main([str(tmp_path)]) == 0
    for name in ("objective_vs_lora_r.png", "objective_vs_trainer_learning_rate.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    markdown = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "Varying hyperparameters: `lora.r`, `trainer.learning_rate`." in markdown
    assert "Optuna best params: lora.r=16, trainer.learning_rate=0.0002" in markdown
    assert "reasoning_tags [lora.r=16, trainer.learning_rate=0.0002]" in markdown
    assert "Only one prompt format (`reasoning_tags`) was evaluated: nothing to compare." in markdown


def test_mixed_test_sets_are_refused(multirun, capsys):
    write_job(multirun, 12, "reasoning_tags", 4, 40.0, sha="b" * 64)
    assert main([str(multirun)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("error: runs were scored on 2 different test sets")
    assert "mixed test sets are not averaged" in err and "a" * 12 in err and "b" * 12 in err
    assert "jobs 12)" in err
    assert not (multirun / "report.md").exists()
    assert main([str(multirun), "--test-set", "aaaa"]) == 0
    assert "1 on another test set" in (multirun / "report.md").read_text(encoding="utf-8")


def test_no_runs_is_one_line_and_exit_1(tmp_path):
    result = run_module("sftlab.report", str(tmp_path), timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip().startswith("error: ") and "no runs found" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_unknown_baseline_and_only_failed_runs_are_one_line_errors(multirun, tmp_path, capsys):
    assert main([str(multirun), "--baseline", "nope"]) == 1
    assert "baseline format 'nope' has no evaluated run" in capsys.readouterr().err
    only_failed = tmp_path / "only_failed"
    job = write_job(only_failed, 0, "alpaca", 1)
    rundir.write_json(job / rundir.FAILURE, {"type": "SftlabError", "message": "bad data", "user_error": True})
    assert main([str(only_failed)]) == 1
    err = capsys.readouterr().err
    assert "1 runs, none evaluated and none with an objective value in metrics.json (1 failed, 0 unfinished)" in err
    assert err.strip().endswith("job 0: bad data") and err.count("\n") == 1


def test_missing_predictions_are_noted_not_fatal(tmp_path):
    write_job(tmp_path, 0, "reasoning_tags", 1, 40.0)
    write_job(tmp_path, 1, "alpaca", 1, 45.0, predictions=False)
    assert main([str(tmp_path)]) == 0
    markdown = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "alpaca seed 1: job 1 has no predictions.jsonl, not tested" in markdown
    assert "alpaca, ja-en" not in markdown  # no verdict without a test


def test_identical_systems_get_p_1_where_sacrebleu_gives_its_floor():
    from sacrebleu.metrics import CHRF
    from sacrebleu.significance import PairedTest

    refs, hyps = references("ja-en"), hypotheses("garbage", "ja-en")
    rows = {
        str(i): {"reference": r, "hypothesis": h, "target_lang": "en"}
        for i, (r, h) in enumerate(zip(refs, hyps, strict=True))
    }
    _, raw = PairedTest([("a", hyps), ("b", hyps)], {"chrf": CHRF()}, [refs], test_type="bs", n_samples=100)()
    assert raw["chrF2"][1].p_value < 0.05  # why the report guards this case
    base, score, p_value = paired_bootstrap(rows, rows, "chrf", 100)
    assert base == score and p_value == 1.0


def test_tests_reproduce_the_eval_json_scores(tmp_path, multirun):
    consistent = tmp_path / "consistent"
    write_job(consistent, 0, "reasoning_tags", 1, 0.0, rescore=True)
    write_job(consistent, 1, "no_system", 1, 0.0, kind="perfect", rescore=True)
    assert main([str(consistent)]) == 0
    summary = {(row["system"], row["direction"]): row for row in read_csv(consistent / "report.csv")}
    for test in read_csv(consistent / "significance.csv"):
        assert float(test["score"]) == pytest.approx(float(summary[("no_system", test["direction"])]["chrf_mean"]))
        assert float(test["score"]) == pytest.approx(100.0) and float(test["p_value"]) < 0.05
    assert "do not reproduce" not in (consistent / "report.md").read_text(encoding="utf-8")
    # the hand-written scores of the fixture are not those of its predictions, and the report says so
    assert main([str(multirun)]) == 0
    assert "predictions.jsonl of jobs 0, 1, 2, 3, 4, 5, 6, 7, 8 do not reproduce their eval.json chrF" in (
        multirun / "report.md"
    ).read_text(encoding="utf-8")


def test_report_imports_no_torch():
    code = "import sftlab.report, sys; assert 'torch' not in sys.modules and 'transformers' not in sys.modules"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
