"""Shared fixtures: composed configs, the bundled data, a tiny model, and running the real entry points."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from helpers.postgres_server import postgres_server
from sftlab.config import Backend, Precision, register_configs, to_schema

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"

register_configs()

# Fast settings for real runs of the tiny model: long enough for its byte-level tokenizer, a few steps.
TINY_RUN = [
    "model=tiny_random",
    "experiment=cpu_quick",
    "trainer.max_seq_length=2048",
    "trainer.max_steps=4",
    "trainer.eval_steps=2",
    "trainer.save_steps=0",
    "eval.max_pairs_per_direction=2",
    "eval.max_new_tokens=8",
    "data.max_train_records=48",
    "data.max_val_records=8",
    "logger=none",
]


def takes_ctrl_c() -> None:
    """``preexec_fn`` of a child a test interrupts: Ctrl-C's default handling, as in a terminal's foreground job.

    A shell starts a background job (``make test &``, a CI runner) with SIGINT ignored, children inherit that, and
    Python then installs no KeyboardInterrupt handler: the test's SIGINT would be lost.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def compose_train(overrides: list[str] | tuple[str, ...] = ()) -> DictConfig:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("train", overrides=list(overrides))


def run_module(module: str, *args: str, env: dict[str, str] | None = None, timeout: int = 600):
    """Run ``python -m module args`` from the project root, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "HYDRA_FULL_ERROR": "0", **(env or {})},
    )


def crash_app_sweep(sweep_dir: Path, *overrides: str, env: dict[str, str] | None = None):
    """The Optuna sweeper (grid sampler) running tests/apps/crash_app.py with the project's configs, under whichever
    launcher ``overrides`` choose; the app records the GPU each job got, or kills its own process."""
    return subprocess.run(
        [
            sys.executable,
            str(ROOT / "tests" / "apps" / "crash_app.py"),
            "--config-dir",
            str(CONF),
            "-m",
            "hydra/sweeper=sftlab_optuna",
            "hydra/sweeper/sampler=grid",
            f"hydra.sweep.dir={sweep_dir}",
            *overrides,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture(scope="session")
def cache_dir() -> str:
    return os.environ.get("SFTLAB_CACHE") or str(Path.home() / ".cache" / "sftlab")


@pytest.fixture(scope="session")
def tiny_model(cache_dir):
    """The tiny random Llama and its tokenizer, loaded with the framework's own loader."""
    from sftlab.models import loading as models

    cfg = to_schema(compose_train(["model=tiny_random"]))
    path = models.model_path(cfg.model, cache_dir)
    return models.load_base(path, Backend.hf, cfg.model, Precision.fp32, 2048)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """One real training + evaluation run of the tiny model through ``python -m sftlab.train``."""
    run_dir = tmp_path_factory.mktemp("tiny_run")
    result = run_module("sftlab.train", *TINY_RUN, f"hydra.run.dir={run_dir}")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return run_dir


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory) -> Iterator[str]:
    """A SQLAlchemy URL to one real PostgreSQL server for the session; skips where none can start."""
    with postgres_server(tmp_path_factory.mktemp("postgres")) as url:
        yield url


def pytest_report_header(config):
    import torch

    return (
        f"sftlab: CUDA {'available: ' + torch.cuda.get_device_name() if torch.cuda.is_available() else 'not available'}"
    )
