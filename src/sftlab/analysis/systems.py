"""What the report compares: a *system* is a prompt format plus every hyperparameter that varies across the runs.

Seeds never make a system of their own: runs that differ only in their seed are repeats of one system.
"""

from __future__ import annotations

from typing import Any

from sftlab.analysis.runs import Job, lookup

HPARAMS = ("model.name", "lora.r", "lora.alpha", "trainer.learning_rate", "trainer.max_seq_length")


NOT_HPARAMS = {"prompt", "prompt.name", "seed", "run_name"}


def varying_hparams(jobs: list[Job]) -> list[str]:
    """Hyperparameters (known ones, and any key a job overrode) whose value differs across ``jobs``."""
    candidates = list(HPARAMS)
    for job in jobs:
        for override in job.overrides:
            key = override.split("=", 1)[0].lstrip("+~")
            if key not in candidates and key not in NOT_HPARAMS and not key.startswith("hydra"):
                candidates.append(key)
    return [key for key in candidates if len({format_value(lookup(job.config, key)) for job in jobs}) > 1]


def format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def system_of(job: Job, hparams: list[str], prompt_format: str | None = None) -> str:
    """A prompt format, and the varying hyperparameters when there are any: ``alpaca [lora.r=8]``.

    With ``prompt_format``, the system of that format at this job's hyperparameters (its baseline partner).
    """
    name = prompt_format or job.format
    if not hparams:
        return name
    return f"{name} [{', '.join(f'{key}={format_value(lookup(job.config, key))}' for key in hparams)}]"
