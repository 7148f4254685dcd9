"""The run-dir contract: typed records survive a write and a read, and real runs write what the records describe."""

from __future__ import annotations

import json

from sftlab import rundir
from sftlab.rundir import DirectionScores, EvalScores, Failure, Metrics, RunRecord, SplitSummary


def sample_records() -> list[rundir.JsonRecord]:
    metrics = Metrics(
        train_loss=2.5,
        steps=4,
        epochs=0.5,
        train_runtime_s=12.0,
        train_tokens=4096,
        peak_memory_gib=1.25,
        peak_memory_kind="cpu_rss",
        backend="hf",
        precision="fp32",
        train_split=SplitSummary(records=48, truncated=1, dropped=0, tokens=9000),
        validation_split=SplitSummary(records=8, truncated=0, dropped=0, tokens=1500),
        train_loss_history=[(1, 3.0), (4, 2.0)],
        eval_loss_history=[(0, 3.1), (4, 2.2)],
        eval_loss=2.2,
        collapsed=None,
        memory_plan={"per_device_train_batch_size": 8, "gradient_accumulation_steps": 1},
    )
    scores = EvalScores(
        directions={
            "ja-en": DirectionScores(pairs=2, empty=0, truncated=1, bleu=1.5, chrf=20.0, chrf_pp=19.0),
            "en-zh": DirectionScores(pairs=2, empty=1, truncated=0, bleu=0.0, chrf=3.0, chrf_pp=2.5),
        },
        macro={"bleu": 0.75, "chrf": 11.5, "chrf_pp": 10.75},
        counts={"pairs": 4, "empty": 1, "truncated": 1},
        test_file="data/translation_test.jsonl",
        test_set_sha256="ab" * 32,
        prompt_format="reasoning_tags",
        generation={"max_new_tokens": 8, "num_beams": 1},
    )
    run = RunRecord(
        command="train",
        seed=3407,
        git={"commit": "0" * 40, "dirty": False},
        data_files=["a.jsonl"],
        data_sha256="cd" * 32,
        packages={"torch": "2.13.0"},
        python="3.11.7",
        device="cpu",
        launch={"world_size": 1},
        backend="hf",
        model_path="/tmp/model",
        argv=["sftlab", "train"],
        tracking={"wandb_id": "abc123", "wandb_url": "https://wandb.ai/x/y/runs/abc123"},
    )
    failure = Failure(type="SftlabError", message="no such file", user_error=True)
    return [metrics, scores, run, failure]


def test_every_record_round_trips_through_its_file(tmp_path):
    for record in sample_records():
        path = rundir.write_record(tmp_path, record)
        assert path.name == rundir.RECORD_FILES[type(record)]
        assert rundir.read_record(tmp_path, type(record)) == record
        assert json.loads(path.read_text())  # plain JSON, readable by any tool


def test_reading_tolerates_older_and_newer_files(tmp_path):
    metrics = sample_records()[0].to_json()
    del metrics["collapsed"], metrics["memory_plan"]  # written before those fields existed
    metrics["added_by_a_newer_sftlab"] = 1
    rundir.write_json(tmp_path / rundir.METRICS, metrics)
    read = rundir.read_record(tmp_path, Metrics)
    assert read.collapsed is None and read.memory_plan is None and read.steps == 4
    assert rundir.read_record(tmp_path / "absent", Metrics) is None


def test_a_real_run_writes_records_the_contract_reads(tiny_run):
    metrics = rundir.read_record(tiny_run, Metrics)
    scores = rundir.read_record(tiny_run, EvalScores)
    run = rundir.read_record(tiny_run, RunRecord)
    assert metrics.steps == 4 and metrics.train_split.records > 0 and metrics.collapsed is None
    assert set(scores.directions) and all(entry.pairs == 2 for entry in scores.directions.values())
    assert run.command == "train" and run.backend == "hf" and run.tracking is None  # logger=none
    assert rundir.read_record(tiny_run, Failure) is None
