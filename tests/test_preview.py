"""``python -m sftlab.preview``: what training will see of each record, from any directory, without model weights."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import transformers

from conftest import ROOT, compose_train
from sftlab.commands import builders
from sftlab.commands.preview import preview_task
from sftlab.config import to_schema
from sftlab.data.records import DataError
from sftlab.data.splits import load_splits
from sftlab.training.tokenize import tokenize_split

TINY = ["model=tiny_random", "logger=none"]
FIELDS = {"split", "prompt", "completion", "prompt_tokens", "completion_tokens", "truncated"}


@pytest.fixture
def no_weights(monkeypatch):
    """Any attempt to load model weights fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("the preview loaded model weights")

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", refuse)
    monkeypatch.setattr(builders.models, "load_base", refuse)


def run_preview(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """``python -m sftlab.preview args`` run from ``cwd``, as a user would."""
    env = {**os.environ, "HYDRA_FULL_ERROR": "0"}
    command = [sys.executable, "-m", "sftlab.preview", *TINY, *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=600, env=env)


def preview(overrides, tmp_path, capsys) -> list[dict]:
    preview_task(compose_train([*TINY, *overrides]), tmp_path / "run")
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_rows_are_what_training_tokenizes(tmp_path, capsys, no_weights, cache_dir):
    rows = preview(["preview.limit=3", f"cache_dir={cache_dir}", "trainer.max_seq_length=700"], tmp_path, capsys)
    assert [row["split"] for row in rows] == ["train"] * 3 + ["validation"] * 3
    assert all(set(row) == FIELDS for row in rows)
    cfg = to_schema(compose_train([*TINY, f"cache_dir={cache_dir}", "trainer.max_seq_length=700"]))
    train, _ = load_splits(cfg.data, cfg.seed)
    tokenizer = builders.models.load_tokenizer(builders.models.model_path(cfg.model, cfg.cache_dir))
    split = tokenize_split(
        train[:3], builders.prompt_format(cfg.prompt, tokenizer), tokenizer, 700, cfg.trainer.completion_only_loss, "t"
    )
    for row, ids in zip(rows[:3], split.dataset["input_ids"], strict=True):
        assert len(ids) == min(700, row["prompt_tokens"] + row["completion_tokens"])
        assert row["truncated"] == (row["prompt_tokens"] + row["completion_tokens"] > 700)
    assert split.truncated == sum(row["truncated"] for row in rows[:3]) == 2  # one of the three fits


def test_common_formats_preview_in_every_style(tmp_path, capsys, no_weights, cache_dir):
    path = tmp_path / "chat.jsonl"
    chat = {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi?"}]}
    chat["messages"].append({"role": "assistant", "content": "Hello."})
    path.write_text("\n".join(json.dumps(chat) for _ in range(4)) + "\n", encoding="utf-8")
    data = ["data=custom", f"data.train_files=[{path}]", f"data.val_files=[{path}]", f"cache_dir={cache_dir}"]
    for prompt, expected in [
        ("reasoning_tags", "<|system|>Be brief.\n<|instruction|>Hi?\n<|response|>"),
        ("alpaca", "Below is an instruction that describes a task. Write a response"),
        ("chat_template", "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi?<|im_end|>"),
    ]:
        rows = preview([*data, f"prompt={prompt}", "preview.limit=1"], tmp_path, capsys)
        assert len(rows) == 2 and rows[0]["prompt"].startswith(expected) and "Hello." in rows[0]["completion"]


def test_bad_data_fails_before_the_tokenizer_loads(tmp_path, capsys, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the tokenizer loaded before the data was checked")

    monkeypatch.setattr(builders.models, "load_tokenizer", refuse)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"instruction": "q"}) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"bad.jsonl: line 1: field 'output' is missing"):
        preview(["data=custom", f"data.train_files=[{bad}]"], tmp_path, capsys)


def test_the_command_runs_from_any_directory(tmp_path, cache_dir):
    """From a directory outside the repository: the bundled data is found, relative paths are the user's."""
    outside = tmp_path / "elsewhere"
    (outside / "mine").mkdir(parents=True)
    rows = [{"question": f"What is {i} + {i}?", "answer": str(2 * i)} for i in range(5)]
    (outside / "mine" / "qa.jsonl").write_text("\n".join(json.dumps(row) for row in rows) + "\n", encoding="utf-8")
    result = run_preview(
        f"cache_dir={cache_dir}",
        "preview.limit=2",
        "preview.out=previews/bundled.jsonl",
        f"hydra.run.dir={tmp_path}/run",
        cwd=outside,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    written = [json.loads(line) for line in (outside / "previews" / "bundled.jsonl").read_text().splitlines()]
    assert [row["split"] for row in written] == ["train", "train", "validation", "validation"]
    assert result.stderr.strip().splitlines()[-1].startswith("[sftlab] preview: 4 records (0 cut at")
    assert not outside.is_relative_to(ROOT)
    mapped = run_preview(
        f"cache_dir={cache_dir}",
        "data=custom",
        "data.train_files=[mine/qa.jsonl]",
        "data.columns={instruction: question, output: answer}",
        "prompt=alpaca",
        f"hydra.run.dir={tmp_path}/run2",
        cwd=outside,
    )
    assert mapped.returncode == 0, mapped.stderr[-3000:]
    printed = [json.loads(line) for line in mapped.stdout.splitlines()]
    assert [row["split"] for row in printed] == ["train"] * 4 + ["validation"]  # val_fraction holds one out
    assert all(any(f"What is {i} + {i}?" in row["prompt"] for row in printed) for i in range(5))
    assert "[sftlab] data: alpaca records (5) have no category" in mapped.stderr
    missing = run_preview("data=custom", "data.train_files=[nope.jsonl]", f"hydra.run.dir={tmp_path}/run3", cwd=outside)
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    last = missing.stderr.strip().splitlines()[-1]
    assert last == f"error: nope.jsonl: no such file or folder (relative to {outside})"
