"""Run tracking: a Weights & Biases adapter, or nothing. Only the entry points import this module.

One W&B run per job: the resolved config (nested), every trainer log (losses, learning rate, grad norm, tokens seen),
the run's final training record, as in ``metrics.json`` (tokens/s, peak memory, runtime), the translation scores per
direction, a table of sample translations and the run dir. Sweep trials share a group (the sweep dir) and carry their
trial number and overrides; every run is tagged with its prompt format. A job that fails is marked failed.

Without an API key, or when the server cannot be reached, the run is written offline under ``<run dir>/wandb``
(``wandb sync`` uploads it later) and says so once per process. The key is read by wandb itself, from
``WANDB_API_KEY`` or its login file, and never put into a config. Tracking never stops training: an error in W&B is
reported once and tracking is switched off for that run.
"""

from __future__ import annotations

import contextlib
import netrc
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from sftlab import rundir
from sftlab.config import LoggerConfig
from sftlab.errors import SftlabError
from sftlab.rundir import EvalScores, Metrics

INIT_TIMEOUT_S = 30.0  # how long an online start may wait for the server; WANDB_INIT_TIMEOUT overrides it
MODES = ("auto", "online", "offline", "disabled")

_offline_reason: str | None = None  # why this process writes offline, once it has said so
_unreachable = False  # the server could not be reached once: later jobs of this process go offline at once


class Tracker(Protocol):
    def link(self) -> dict[str, str] | None: ...

    def log(self, metrics: dict[str, float], step: int) -> None: ...

    def log_model(self, description: dict[str, Any]) -> None: ...

    def log_training(self, metrics: Metrics) -> None: ...

    def log_evaluation(self, scores: EvalScores, predictions: list[dict[str, Any]]) -> None: ...

    def finish(self, failed: bool) -> None: ...


class NullTracker:
    def link(self) -> dict[str, str] | None:
        return None

    def log(self, metrics: dict[str, float], step: int) -> None:
        pass

    def log_model(self, description: dict[str, Any]) -> None:
        pass

    def log_training(self, metrics: Metrics) -> None:
        pass

    def log_evaluation(self, scores: EvalScores, predictions: list[dict[str, Any]]) -> None:
        pass

    def finish(self, failed: bool) -> None:
        pass


def has_wandb_credentials() -> bool:
    """An API key in the environment, or a ``wandb login`` entry for the server in the netrc file."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        auth = netrc.netrc(os.environ.get("NETRC") or None)
    except (OSError, netrc.NetrcParseError):
        return False
    return auth.authenticators(_server_host()) is not None


def _server_host() -> str:
    return os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai").split("//")[-1].split("/")[0]


def resolve_mode(configured: str) -> str:
    """``online``, ``offline`` or ``disabled``: WANDB_MODE wins over logger.mode; ``auto`` goes online only with
    credentials. Reads no network."""
    mode = os.environ.get("WANDB_MODE") or configured
    if mode == "dryrun":
        mode = "offline"
    if mode not in MODES:
        source = "WANDB_MODE" if os.environ.get("WANDB_MODE") else "logger.mode"
        raise SftlabError(f"{source} must be one of {', '.join(MODES)}, got {mode!r}")
    if mode == "auto":
        mode = "online" if has_wandb_credentials() else "offline"
    return mode


def _say_offline_once(reason: str, run_dir: Path) -> None:
    global _offline_reason
    if _offline_reason is None:
        _offline_reason = reason
        print(
            f"[sftlab] W&B: {reason}; logging offline into each run dir's wandb/ (first: {run_dir / 'wandb'}). "
            "Upload later with `wandb sync <run dir>/wandb/offline-run-*`."
        )


def _warn(message: str) -> None:
    print(f"[sftlab] W&B: {message}; tracking is off for this run, training goes on")


def _describe(error: BaseException) -> str:
    """The error's type and first line, with any API key blanked out."""
    lines = str(error).strip().splitlines()
    text = f"{type(error).__name__}: {lines[0][:200]}" if lines else type(error).__name__
    key = os.environ.get("WANDB_API_KEY")
    return text.replace(key, "***") if key else text


class WandbTracker:
    """One started W&B run. Every call is guarded: an error in W&B stops tracking, never training."""

    def __init__(self, wandb: Any, run: Any, logger_cfg: LoggerConfig, run_dir: Path):
        self._wandb = wandb
        self.run = run
        self.sample_rows = logger_cfg.sample_table_rows
        self.log_adapter = logger_cfg.log_adapter
        self.run_dir = run_dir
        self._link = {
            "wandb_id": run.id,
            "wandb_url": getattr(run, "url", None) or "",
            "wandb_project": run.project or "",
        }

    def link(self) -> dict[str, str] | None:
        """The W&B run's id and URL (an offline run has no URL until ``wandb sync``)."""
        return self._link

    def _safely(self, action: Callable[[], None]) -> None:
        if self.run is None:
            return
        try:
            action()
        except Exception as error:
            _warn(f"logging failed ({_describe(error)})")
            run, self.run = self.run, None
            with contextlib.suppress(Exception):
                run.finish(exit_code=1)

    def log(self, metrics: dict[str, float], step: int) -> None:
        self._safely(lambda: self.run.log({_namespaced(key): value for key, value in metrics.items()}, step=step))

    def log_model(self, description: dict[str, Any]) -> None:
        """The model's parameter counts and adapter settings, into the run's config under ``model_info``."""
        self._safely(lambda: self.run.config.update({"model_info": description}, allow_val_change=True))

    def log_training(self, metrics: Metrics) -> None:
        """The run's final training record (metrics.json) as ``training/*`` summary values."""
        self._safely(lambda: self.run.summary.update(_training_summary(metrics.to_json())))

    def log_evaluation(self, scores: EvalScores, predictions: list[dict[str, Any]]) -> None:
        def action() -> None:
            logged: dict[str, Any] = {f"translation/macro/{name}": value for name, value in scores.macro.items()}
            for direction, entry in scores.directions.items():
                for name in ("bleu", "chrf", "chrf_pp", "pairs", "empty", "truncated"):
                    logged[f"translation/{direction}/{name}"] = getattr(entry, name)
            table = self._wandb.Table(columns=["direction", "source", "reference", "hypothesis"])
            for row in _spread_sample(predictions, self.sample_rows):
                table.add_data(row["direction"], row["source"], row["reference"], row["hypothesis"])
            logged["translation/samples"] = table
            self.run.log(logged)  # the last value of each key is also the run's summary

        self._safely(action)

    def finish(self, failed: bool) -> None:
        def action() -> None:
            adapter = self.run_dir / rundir.ADAPTER
            if self.log_adapter and not failed and adapter.is_dir():
                try:
                    artifact = self._wandb.Artifact(
                        name=f"adapter-{self.run.id}", type="model", metadata={"run_dir": str(self.run_dir)}
                    )
                    artifact.add_dir(str(adapter))
                    self.run.log_artifact(artifact)
                except Exception as error:  # the run itself is fine: finish it as such
                    print(f"[sftlab] W&B: the adapter was not logged ({_describe(error)})")
            self.run.finish(exit_code=1 if failed else 0)
            self.run = None

        self._safely(action)


def _namespaced(key: str) -> str:
    """Trainer log keys as W&B panels: ``eval_loss`` -> ``eval/loss``, ``loss`` -> ``train/loss``."""
    if key.startswith("eval_"):
        return f"eval/{key[5:]}"
    if key == "train_loss":  # the mean over the whole training, logged once at the end
        return "train/mean_loss"
    return f"train/{key.removeprefix('train_')}"


def _training_summary(metrics: dict[str, Any]) -> dict[str, Any]:
    """The scalars of ``metrics.json`` (tokens/s, peak memory, runtime, final losses) as ``training/<name>``."""
    return {
        f"training/{key}": value
        for key, value in metrics.items()
        if isinstance(value, (int, float, str)) and key != "adapter_dir"
    }


def _spread_sample(rows: list[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    """Up to ``count`` rows spread over the directions, in order."""
    if len(rows) <= count:
        return rows
    stride = len(rows) / count
    return [rows[int(i * stride)] for i in range(count)]


def _start_run(wandb: Any, mode: str, run_dir: Path, kwargs: dict[str, Any]) -> Any | None:
    """``wandb.init`` in ``mode``; online falls back to offline when the server cannot be reached."""
    global _unreachable
    if wandb.run is not None:  # left open by a job that failed before its tracker was finished
        with contextlib.suppress(Exception):
            wandb.run.finish(exit_code=1)
    if mode == "online" and _unreachable:
        mode = "offline"
    try:
        return wandb.init(mode=mode, **kwargs)
    except Exception as error:
        if mode != "online":
            _warn(f"cannot start an {mode} run ({_describe(error)})")
            return None
        _unreachable = True
        _say_offline_once(f"cannot start an online run at {_server_host()} ({_describe(error)})", run_dir)
    try:
        return wandb.init(mode="offline", **kwargs)
    except Exception as error:
        _warn(f"cannot start an offline run either ({_describe(error)})")
        return None


def create_tracker(
    logger_cfg: LoggerConfig,
    config: dict[str, Any],
    run_dir: Path,
    name: str,
    group: str | None,
    tags: list[str],
    extra_config: dict[str, Any],
    job_type: str = "train",
) -> Tracker:
    """A tracker for one job of ``job_type`` (train, evaluate, ask; a sweep's train jobs are ``sweep-trial``).

    ``extra_config`` may hold ``sweep`` = {group, job_num, overrides} of a multirun.
    """
    if logger_cfg.name == "none":
        return NullTracker()
    if logger_cfg.name != "wandb":
        raise SftlabError(f"unknown logger {logger_cfg.name!r} (expected wandb or none)")
    mode = resolve_mode(logger_cfg.mode)
    if mode == "disabled":
        return NullTracker()
    try:
        import wandb
    except ImportError:
        _warn("the wandb package does not import")
        return NullTracker()
    if mode == "offline":
        if os.environ.get("WANDB_MODE"):
            _say_offline_once(f"WANDB_MODE={os.environ['WANDB_MODE']}", run_dir)
        elif logger_cfg.mode == "auto":
            _say_offline_once("no API key (set WANDB_API_KEY or run `wandb login`)", run_dir)
        else:
            _say_offline_once("logger.mode=offline", run_dir)
    job_num = (extra_config.get("sweep") or {}).get("job_num")
    kwargs = dict(
        project=logger_cfg.project,
        entity=logger_cfg.entity,
        name=name if job_num is None else f"{name}-trial{job_num}",
        group=group[-128:] if group else None,  # the server keeps at most 128 characters
        job_type="sweep-trial" if job_num is not None and job_type == "train" else job_type,
        tags=list(tags),
        config={**config, **extra_config},
        dir=str(run_dir),
        reinit="finish_previous",
        settings=wandb.Settings(
            init_timeout=float(os.environ.get("WANDB_INIT_TIMEOUT", INIT_TIMEOUT_S)), silent=True, console="off"
        ),
    )
    run = _start_run(wandb, mode, run_dir, kwargs)
    return NullTracker() if run is None else WandbTracker(wandb, run, logger_cfg, run_dir)
