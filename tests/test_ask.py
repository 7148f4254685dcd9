"""sftlab ask / translate on a real trained run of the tiny model: streamed answers, files, the interactive prompt,
the reasoning and response read off the tags, one-line errors, and the ask job's tracking."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from conftest import ROOT, compose_train
from helpers.wandb_records import offline_runs, read_records, read_run
from sftlab import rundir
from sftlab.config import to_schema
from sftlab.data.prompts import PromptFormat
from sftlab.data.records import TranslationPair
from sftlab.evaluation.answers import parse_answer, question_record
from sftlab.evaluation.translation import translation_request

EOS = "<|im_end|>"
REQUEST_REASONING = to_schema(compose_train(["model=tiny_random"])).eval.request.reasoning


def sftlab(*args: str, stdin: str | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """The ``sftlab`` command as a user runs it (``python -m sftlab.cli`` is its console script)."""
    return subprocess.run(
        [sys.executable, "-m", "sftlab.cli", *args],
        cwd=ROOT,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


def one_error_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def answer_lines(stdout: str) -> dict[str, str]:
    """The ``reasoning:`` and ``response:`` lines an answer ends with."""
    return {
        key: line.removeprefix(f"{key}: ")
        for line in stdout.splitlines()
        for key in ("reasoning", "response")
        if line.startswith(f"{key}: ")
    }


def offline_wandb(root: Path) -> dict[str, str]:
    """W&B offline, its settings and caches inside ``root``, no stored login."""
    dirs = {name: str(root / name.lower()) for name in ("WANDB_DIR", "WANDB_CONFIG_DIR", "WANDB_CACHE_DIR")}
    return {"WANDB_MODE": "offline", "NETRC": str(root / "no_netrc"), **dirs}


def snapshot(run_dir: Path) -> dict[str, float]:
    return {str(path.relative_to(run_dir)): path.stat().st_mtime for path in run_dir.rglob("*")}


# ------------------------------------------------------------------------------------------------ reading answers


def test_the_tagged_response_and_the_prompts_reasoning():
    prompt = "<|instruction|>Why?\n<|reasoning|>Think of the sea before answering.\n<|flag|>logician\n<|response|>"
    answer = parse_answer(prompt, f"Because water holds heat.{EOS}", EOS, stopped=True)
    assert answer.response == "Because water holds heat."
    assert answer.reasoning == "Think of the sea before answering."
    assert answer.stopped


def test_a_reasoning_the_model_writes_itself_and_text_after_the_response():
    prompt = "<|instruction|>Why?\n<|reasoning|>"
    generated = f"Compare water and land.\n<|response|>Water is slow to cool.\n<|keywords|>heat{EOS}ignored"
    answer = parse_answer(prompt, generated, EOS, stopped=True)
    assert (answer.reasoning, answer.response) == ("Compare water and land.", "Water is slow to cool.")


def test_a_format_without_tags_answers_with_the_whole_response():
    prompt = "### Instruction:\nWhy?\n\n### Response:"
    answer = parse_answer(prompt, f"\nBecause.{EOS}", EOS, stopped=True)
    assert (answer.reasoning, answer.response) == (None, "Because.")
    cut = parse_answer(prompt, "Because the sea", EOS, stopped=False)
    assert (cut.response, cut.stopped) == ("Because the sea", False)


def test_a_question_renders_like_a_training_record():
    cfg = to_schema(compose_train(["model=tiny_random"]))
    prompt_format = PromptFormat(cfg.prompt, eos_token=EOS)
    prompt = prompt_format.render_prompt(
        question_record("Why?", "", "logician", "Japanese", "Reason before answering.")
    )
    assert prompt.startswith("<|system|>You are a careful logician.")
    assert "<|instruction|>Why?\n<|reasoning|>Reason before answering.\n" in prompt
    assert "<|flag|>logician\n<|language|>Japanese\n" in prompt
    assert prompt.endswith("<|response|>")
    assert "<|context|>" not in prompt and "<|keywords|>" not in prompt


# ---------------------------------------------------------------------------------------------- the real commands


@pytest.mark.slow
def test_ask_streams_then_prints_reasoning_and_response(tiny_run):
    before = snapshot(tiny_run)
    result = sftlab(
        "ask",
        str(tiny_run),
        "Why is the sea salty?",
        "--reasoning",
        "Recall rivers before answering.",
        "--max-new-tokens",
        "12",
        "--flag",
        "logician",
        "--language",
        "en",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = answer_lines(result.stdout)
    assert lines["reasoning"] == "Recall rivers before answering."
    streamed = result.stdout.split("reasoning: ")[0]
    assert streamed.strip(), result.stdout  # the tokens came before the parsed answer
    assert lines["response"] and lines["response"] in streamed
    assert snapshot(tiny_run) == before  # nothing written into the trained run


@pytest.mark.slow
def test_translate_is_the_evaluations_translator_request(tiny_run):
    result = sftlab(
        "translate", str(tiny_run), "--direction", "ja-en", "台風で欠航になりました。", "--max-new-tokens", "6"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert answer_lines(result.stdout)["reasoning"] == REQUEST_REASONING


@pytest.mark.slow
def test_a_file_is_answered_in_batches_as_one_question_is(tiny_run, tmp_path):
    questions = tmp_path / "questions.jsonl"
    rows = [
        {"question": "Why is the sea salty?", "id": 1},
        {"question": "二つの数を足すと?", "language": "ja", "id": 2},
    ]
    questions.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    out = tmp_path / "answers.jsonl"
    result = sftlab("ask", str(tiny_run), "--file", str(questions), "--out", str(out), "--max-new-tokens", "8")
    assert result.returncode == 0, result.stdout + result.stderr
    answers = rundir.read_jsonl(out)
    assert [row["id"] for row in answers] == [1, 2]
    assert all({"response", "reasoning", "generated", "stopped"} <= row.keys() for row in answers)
    single = sftlab("ask", str(tiny_run), "Why is the sea salty?", "--max-new-tokens", "8")
    assert answer_lines(single.stdout)["response"] == answers[0]["response"]  # greedy either way

    texts = tmp_path / "texts.jsonl"
    texts.write_text('{"text": "下雨了。", "direction": "zh-en"}\n{"source": "Hello."}\n', encoding="utf-8")
    out = tmp_path / "translations.jsonl"
    result = sftlab(
        "translate",
        str(tiny_run),
        "--direction",
        "en-ja",
        "--file",
        str(texts),
        "--out",
        str(out),
        "--max-new-tokens",
        "4",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert [row["reasoning"] for row in rundir.read_jsonl(out)] == [REQUEST_REASONING] * 2


@pytest.mark.slow
def test_the_interactive_prompt_reads_until_exit(tiny_run):
    result = sftlab("ask", str(tiny_run), "--max-new-tokens", "4", stdin="first question\n\nexit\nnever asked\n")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("response: ") == 1


@pytest.mark.slow
def test_mistakes_are_one_line(tiny_run, tmp_path):
    assert "not a run dir" in one_error_line(sftlab("ask", str(tmp_path), "Why?"))
    no_adapter = tmp_path / "no_adapter"
    shutil.copytree(tiny_run / ".hydra", no_adapter / ".hydra")
    assert "no trained adapter" in one_error_line(sftlab("ask", str(no_adapter), "Why?"))
    line = one_error_line(sftlab("translate", str(tiny_run), "--direction", "ja-xx", "text"))
    assert "unknown language code 'xx'" in line
    assert "needs a direction" in one_error_line(sftlab("translate", str(tiny_run), "text"))
    assert "flag must be one of" in one_error_line(sftlab("ask", str(tiny_run), "--flag", "poet", "Why?"))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "a"}\n{"text": "b"}\n', encoding="utf-8")
    line = one_error_line(sftlab("ask", str(tiny_run), "--file", str(bad), "--out", str(tmp_path / "o.jsonl")))
    assert f"{bad}: line 2: needs a text field" in line
    usage = sftlab("ask", str(tiny_run), "--file", str(bad))
    assert usage.returncode == 2 and "--file needs --out" in usage.stderr


def test_translation_requests_name_their_direction():
    cfg = to_schema(compose_train(["model=tiny_random"]))
    record = translation_request(TranslationPair("", "雨です。", "", "ja", "en"), cfg.eval.request)
    assert record["instruction"] == "次の文を英語に翻訳してください。" and record["flag"] == "translator"


@pytest.mark.slow
def test_ask_is_tracked_as_its_own_job(tiny_run, tmp_path):
    """The run's own logger (here W&B offline) gets an ``ask`` job with the model's parameter counts."""
    run_dir = tmp_path / "run"
    shutil.copytree(tiny_run, run_dir)
    config_file = run_dir / rundir.HYDRA_CONFIG
    config = OmegaConf.load(config_file)
    config.logger = {**OmegaConf.to_container(config.logger), "name": "wandb", "mode": "offline"}
    OmegaConf.save(config, config_file)
    result = sftlab("ask", str(run_dir), "Why?", "--max-new-tokens", "4", env=offline_wandb(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    runs = offline_runs(run_dir / "wandb")
    assert len(runs) == 1, runs
    job_types = [r.run.job_type for r in read_records(runs[0]) if r.WhichOneof("record_type") == "run"]
    assert job_types == ["ask"]
    logged = read_run(runs[0])
    assert logged.config["model_info"]["trainable_parameters"] == 0  # an adapter loaded for inference
    assert logged.config["model_info"]["peft"]["r"] == to_schema(compose_train(["model=tiny_random"])).lora.r
    assert logged.exit_code == 0
    assert f"tracked as W&B run {runs[0].stem.removeprefix('run-')}" in result.stdout


@pytest.mark.slow
def test_evaluate_is_tracked_with_the_model_too(tiny_run, tmp_path):
    """evaluate's job logs the same model description, and run.json names its W&B run."""
    run_dir = tmp_path / "evaluate"
    command = [sys.executable, "-m", "sftlab.evaluate", "logger=wandb", f"eval.adapter_dir={tiny_run / rundir.ADAPTER}"]
    command += ["eval.max_pairs_per_direction=1", "eval.max_new_tokens=2", f"hydra.run.dir={run_dir}"]
    result = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=300, env={**os.environ, **offline_wandb(tmp_path)}
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    (log,) = offline_runs(run_dir / "wandb")
    assert [r.run.job_type for r in read_records(log) if r.WhichOneof("record_type") == "run"] == ["evaluate"]
    assert read_run(log).config["model_info"]["peft"]["r"] == 16
    assert rundir.read_record(run_dir, rundir.RunRecord).tracking["wandb_id"] == log.stem.removeprefix("run-")
