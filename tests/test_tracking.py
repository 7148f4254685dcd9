"""W&B tracking, offline: what real runs wrote into their ``.wandb`` record logs, and that the API key stays out."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import ROOT, TINY_RUN, run_module
from helpers.wandb_records import offline_runs, read_records, read_run
from sftlab import tracking
from sftlab.errors import SftlabError

FAKE_KEY = "sftlabtest" * 4  # 40 characters, the length of a real key
BASE_RUN = [arg for arg in TINY_RUN if not arg.startswith("logger=")]


def wandb_env(root: Path, **extra: str) -> dict[str, str]:
    """An offline W&B with its caches and settings inside ``root``, and a key that must never be written."""
    return {
        "WANDB_MODE": "offline",
        "WANDB_API_KEY": FAKE_KEY,
        "WANDB_DIR": str(root / "wandb_dir"),
        "WANDB_CACHE_DIR": str(root / "wandb_cache"),
        "WANDB_DATA_DIR": str(root / "wandb_data"),
        "WANDB_CONFIG_DIR": str(root / "wandb_config"),
        "NETRC": str(root / "no_netrc"),
        **extra,
    }


@pytest.fixture(scope="module")
def wandb_run(tmp_path_factory):
    """One real tiny training + evaluation, tracked offline, with a fixed group and the adapter as an artifact."""
    root = tmp_path_factory.mktemp("wandb_run")
    run_dir = root / "run"
    result = run_module(
        "sftlab.train",
        *BASE_RUN,
        "logger=wandb",
        "logger.group=mygroup",
        "logger.log_adapter=true",
        f"hydra.run.dir={run_dir}",
        env=wandb_env(root),
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    runs = offline_runs(run_dir / "wandb")
    assert len(runs) == 1, runs
    return root, run_dir, runs[0], read_run(runs[0]), result


@pytest.mark.slow
def test_run_config_group_tags_and_exit(wandb_run):
    _, run_dir, _, run, result = wandb_run
    assert run.config["lora"]["r"] == 16 and run.config["model"]["name"] == "tiny_random"
    assert run.config["trainer"]["max_steps"] == 4 and run.config["model"]["source"] == "tiny_random"
    assert run.config["run_dir"] == str(run_dir) and run.config["sweep"] == {}
    assert run.group == "mygroup"
    assert "prompt:reasoning_tags" in run.tags and "model:tiny_random" in run.tags
    assert run.name == "tiny_random-reasoning_tags-s42"
    assert run.exit_code == 0
    assert result.stdout.count("[sftlab] W&B: WANDB_MODE=offline") == 1


@pytest.mark.slow
def test_run_history_and_summary(wandb_run):
    _, _, _, run, _ = wandb_run
    keys = run.history_keys()
    assert {"train/loss", "train/learning_rate", "train/grad_norm", "eval/loss"} <= keys
    train_steps = [row["_step"] for row in run.history if "train/loss" in row]
    assert train_steps == sorted(train_steps) and len(train_steps) == 4
    assert sum("eval/loss" in row for row in run.history) == 3  # before training, at steps 2 and 4
    for direction in ("ja-en", "en-ja", "zh-en", "zh-ja"):
        for name in ("bleu", "chrf", "chrf_pp"):
            assert f"translation/{direction}/{name}" in run.summary
            assert f"translation/{direction}/{name}" in keys
    assert "translation/macro/chrf" in run.summary
    assert run.summary["training/steps"] == 4
    assert run.summary["training/tokens_per_second"] > 0 and run.summary["training/peak_memory_gib"] > 0


@pytest.mark.slow
def test_samples_table_and_adapter_artifact(wandb_run):
    _, _, path, run, _ = wandb_run
    tables = list((path.parent / "files" / "media" / "table").rglob("*.table.json"))
    assert len(tables) == 1
    table = json.loads(tables[0].read_text(encoding="utf-8"))
    assert {"source", "reference", "hypothesis"} <= set(table["columns"])
    assert len(table["data"]) == 8  # 2 pairs in each of 4 directions, under sample_table_rows=16
    assert run.summary["translation/samples/_type"] == "table-file"
    adapters = [artifact for artifact in run.artifacts if artifact.type == "model"]
    assert len(adapters) == 1 and adapters[0].name.startswith("adapter-")


@pytest.mark.slow
def test_api_key_is_written_nowhere(wandb_run):
    root, run_dir, _, _, result = wandb_run
    assert (run_dir / ".hydra" / "config.yaml").is_file() and (run_dir / "wandb").is_dir()
    files = [path for path in root.rglob("*") if path.is_file()]
    assert len(files) > 10
    leaks = [path for path in files if FAKE_KEY.encode() in path.read_bytes()]
    assert leaks == []
    assert FAKE_KEY not in result.stdout + result.stderr


@pytest.mark.slow
def test_failed_sweep_trial_is_marked_failed_and_the_sweep_goes_on(tmp_path):
    sweep_dir = tmp_path / "sweep"
    result = run_module(
        "sftlab.train",
        "-m",
        *BASE_RUN,
        "logger=wandb",
        "trainer.learning_rate=1e30",
        "trainer.warmup_steps=0",  # the loss of step 2 is already non-finite
        "trainer.eval_on_start=false",
        "eval.enabled=false",
        "eval.objective=eval_loss",
        f"hydra.sweep.dir={sweep_dir}",
        env=wandb_env(tmp_path),
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert json.loads((sweep_dir / "0" / "failure.json").read_text())["type"] == "TrainingFault"
    runs = offline_runs(sweep_dir / "0" / "wandb")
    assert len(runs) == 1
    run = read_run(runs[0])
    assert run.exit_code == 1
    assert run.group == str(sweep_dir) and run.name.endswith("-trial0")
    assert run.config["sweep"]["job_num"] == 0 and "trainer.learning_rate=1e+30" in run.config["sweep"]["overrides"]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


FALLBACK_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from omegaconf import OmegaConf
    from sftlab.tracking import create_tracker

    cfg = OmegaConf.create({"name": "wandb", "project": "p", "entity": None, "mode": "online",
                            "sample_table_rows": 4, "log_adapter": False})
    run_dir = Path(sys.argv[1])
    started = time.perf_counter()
    left_open = create_tracker(cfg, {"a": 1}, run_dir, "left-open", None, [], {})
    left_open.log({"loss": 1.0}, step=1)  # never finished, like a job that failed before its finally block
    first = time.perf_counter() - started
    tracker = create_tracker(cfg, {"a": 2}, run_dir, "second", None, [], {})
    tracker.log({"loss": 0.5}, step=1)
    tracker.finish(failed=False)
    print(f"first {first:.1f} s, second {time.perf_counter() - started - first:.1f} s")
    """
)


@pytest.mark.slow
def test_online_without_a_server_falls_back_to_offline_once(tmp_path):
    env = wandb_env(
        tmp_path,
        WANDB_MODE="online",
        WANDB_BASE_URL=f"http://127.0.0.1:{closed_port()}",
        WANDB_INIT_TIMEOUT="3",
    )
    result = subprocess.run(
        [sys.executable, "-c", FALLBACK_SCRIPT, str(tmp_path / "run")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **env},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert result.stdout.count("[sftlab] W&B:") == 1
    assert "cannot start an online run at 127.0.0.1" in result.stdout
    runs = {run.name: run for run in map(read_run, offline_runs(tmp_path / "run" / "wandb"))}
    assert set(runs) == {"left-open", "second"}
    assert runs["left-open"].exit_code == 1  # finished as failed when the next job started
    assert runs["second"].exit_code == 0 and runs["second"].config["a"] == 2
    assert FAKE_KEY not in result.stdout + result.stderr


def test_resolve_mode(monkeypatch, tmp_path):
    monkeypatch.setenv("NETRC", str(tmp_path / "missing"))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_BASE_URL", raising=False)
    assert tracking.resolve_mode("auto") == "offline"
    assert tracking.resolve_mode("online") == "online"
    monkeypatch.setenv("WANDB_API_KEY", FAKE_KEY)
    assert tracking.resolve_mode("auto") == "online"
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert tracking.resolve_mode("online") == "offline"
    monkeypatch.setenv("WANDB_MODE", "dryrun")
    assert tracking.resolve_mode("auto") == "offline"
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert tracking.resolve_mode("auto") == "disabled"
    monkeypatch.setenv("WANDB_MODE", "sometimes")
    with pytest.raises(SftlabError, match="WANDB_MODE"):
        tracking.resolve_mode("auto")
    monkeypatch.delenv("WANDB_MODE")
    with pytest.raises(SftlabError, match="logger.mode"):
        tracking.resolve_mode("always")


def test_auto_mode_uses_a_stored_login(monkeypatch, tmp_path):
    netrc_file = tmp_path / "netrc"
    netrc_file.write_text("machine wandb.example.com\n  login user\n  password secret\n")
    netrc_file.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc_file))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_BASE_URL", raising=False)
    assert tracking.resolve_mode("auto") == "offline"  # a login for another host
    monkeypatch.setenv("WANDB_BASE_URL", "https://wandb.example.com")
    assert tracking.resolve_mode("auto") == "online"


def test_none_and_disabled_need_no_wandb(monkeypatch, tmp_path):
    from omegaconf import OmegaConf

    cfg = OmegaConf.create({"name": "none"})
    assert isinstance(tracking.create_tracker(cfg, {}, tmp_path, "x", None, [], {}), tracking.NullTracker)
    monkeypatch.setenv("WANDB_MODE", "disabled")
    cfg = OmegaConf.create({"name": "wandb", "mode": "auto"})
    assert isinstance(tracking.create_tracker(cfg, {}, tmp_path, "x", None, [], {}), tracking.NullTracker)
    with pytest.raises(SftlabError, match="unknown logger"):
        tracking.create_tracker(OmegaConf.create({"name": "mlflow"}), {}, tmp_path, "x", None, [], {})


def test_record_reader_checks_crc(tmp_path):
    """A hand-made log: one full record, one split over first/middle/last chunks across a block boundary."""
    import struct
    import zlib

    from wandb.proto import wandb_internal_pb2 as pb

    def chunk(kind: int, data: bytes) -> bytes:
        return struct.pack("<IHB", zlib.crc32(data, zlib.crc32(bytes([kind]))), len(data), kind) + data

    small = pb.Record(num=1).SerializeToString()
    big = pb.Record(num=2, run=pb.RunRecord(run_group="g" * 40000)).SerializeToString()
    body = bytearray(b":W&B" + struct.pack("<HB", 0xBEE1, 0) + chunk(1, small))
    first = 32 * 1024 - len(body) - 7
    body += chunk(2, big[:first])  # fills the first block exactly
    body += chunk(3, big[first : first + 32 * 1024 - 7])  # fills the second block
    body += chunk(4, big[first + 32 * 1024 - 7 :])
    path = tmp_path / "run-x.wandb"
    path.write_bytes(bytes(body))
    records = read_records(path)
    assert [record.num for record in records] == [1, 2] and records[1].run.run_group == "g" * 40000
    body[20] ^= 0xFF
    path.write_bytes(bytes(body))
    with pytest.raises(ValueError, match="CRC"):
        read_records(path)
