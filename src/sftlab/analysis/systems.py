"""What the report compares: a *system* is a prompt format plus every parameter that varies across the runs.

A parameter is shown as a command line sets it: a value by its value (``lora.r=8``), a config group by its choice
(``trainer=quick``), never by the group's contents. A group is compared across runs by its choice too: a sweep over
``trainer.learning_rate`` changes the trainer group's contents in every run, but ``trainer=quick`` passed to every
job is no varying parameter. Seeds never make a system of their own: runs that differ only in their seed are
repeats of one system.
"""

from __future__ import annotations

import hashlib
import json

from sftlab.analysis.runs import Job, format_value, node

# Checked for variation in every multirun; keys a job overrode on the command line are checked too.
HPARAMS = ("model.name", "lora.r", "lora.alpha", "trainer.learning_rate", "trainer.max_seq_length")
NOT_HPARAMS = {"prompt", "prompt.name", "seed", "run_name"}


def param_value(job: Job, key: str) -> str:
    """A parameter of one job as the report shows it: a value as set, a config group by its choice.

    A key that is a group (a dict in the config), or that the config lacks (a global preset such as
    ``experiment=cpu_quick``), takes the command line's value, else Hydra's recorded choice, else the group's
    ``name``; a group known by none of them (a hand-made run dir) gets a short fingerprint of its contents.
    """
    value = node(job.config, key)
    if value is not None and not isinstance(value, dict):
        return format_value(value)
    choice = job.override_values().get(key) or job.choices.get(key.replace(".", "/"))
    if choice is None and isinstance(value, dict):
        choice = value.get("name") or f"#{fingerprint(value)}"
    return format_value(choice)


def fingerprint(group: dict) -> str:
    return hashlib.sha256(json.dumps(group, sort_keys=True, default=str).encode()).hexdigest()[:8]


def varying_hparams(jobs: list[Job]) -> list[str]:
    """Parameters (known ones, and any key a job overrode) whose shown value differs across ``jobs``; a value of a
    varying group that only follows its choice (``trainer.max_seq_length`` with ``trainer=quick|default``) is left
    to the group."""
    candidates = list(HPARAMS)
    for job in jobs:
        for key in job.override_values():
            if key not in candidates and key not in NOT_HPARAMS and not key.startswith("hydra"):
                candidates.append(key)
    varying = [key for key in candidates if len({param_value(job, key) for job in jobs}) > 1]
    return [key for key in varying if not follows_group(key, varying, jobs)]


def follows_group(key: str, varying: list[str], jobs: list[Job]) -> bool:
    """True when ``key`` lies in a varying group, no job set it itself, and each choice of the group fixes it."""
    group = next((group for group in varying if key.startswith(f"{group}.")), None)
    if group is None or any(key in job.override_values() for job in jobs):
        return False
    pairs = {(param_value(job, group), param_value(job, key)) for job in jobs}
    return len(pairs) == len({choice for choice, _ in pairs})


def system_of(job: Job, hparams: list[str], prompt_format: str | None = None) -> str:
    """A prompt format, and the varying parameters when there are any: ``alpaca [lora.r=8, trainer=quick]``.

    With ``prompt_format``, the system of that format at this job's parameters (its baseline partner).
    """
    name = prompt_format or job.format
    if not hparams:
        return name
    return f"{name} [{', '.join(f'{key}={param_value(job, key)}' for key in hparams)}]"
