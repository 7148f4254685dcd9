"""The reproducibility record of a run (run.json): seed, code version, data hash, package versions, device, and the
processes of a DDP launch."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from sftlab.config import Backend
from sftlab.data.records import files_sha256
from sftlab.data.sources import resolve
from sftlab.process import this_process
from sftlab.rundir import RunRecord

PACKAGES = (
    "sftlab",
    "torch",
    "transformers",
    "trl",
    "peft",
    "accelerate",
    "datasets",
    "sacrebleu",
    "hydra-core",
    "optuna",
    "wandb",
    "unsloth",
    "bitsandbytes",
)


def git_state(cwd: str | Path = ".") -> dict[str, Any]:
    def git(*args: str) -> str | None:
        try:
            return subprocess.run(
                ["git", *args], cwd=cwd, capture_output=True, text=True, check=True, timeout=10
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def device_description() -> str:
    if torch.cuda.is_available():
        return f"cuda: {torch.cuda.get_device_name()} x{torch.cuda.device_count()}"
    return f"cpu: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


def launch_description() -> dict[str, Any]:
    """How many processes trained the run (world_size > 1: DDP), which GPUs they could see, and the rank of the
    process that wrote the record (rank 0 of a launch)."""
    process = this_process()
    return {
        "world_size": process.world_size,
        "rank": process.rank,
        "local_rank": process.local_rank,
        "local_world_size": process.local_world_size,
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
    }


def run_record(command: str, seed: int, data_files: list[str], backend: Backend, model_path: str) -> RunRecord:
    """The reproducibility record of a run, written as run.json before its model loads."""
    existing = [resolve(path) for path in data_files if resolve(path).exists()]  # a Hub id is not hashed
    return RunRecord(
        command=command,
        seed=seed,
        git=git_state(),
        data_files=data_files,
        data_sha256=files_sha256(existing) if existing else None,
        packages=package_versions(),
        python=sys.version.split()[0],
        device=device_description(),
        launch=launch_description(),
        backend=backend.value,
        model_path=model_path,
        argv=sys.argv,
    )
