"""Run tracking: a Weights & Biases adapter, or nothing. Only the entry points import this module.

One W&B run per job: the resolved config (nested), every trainer log (losses, learning rate, tokens/s, memory),
the translation scores per direction, a table of sample translations and the run dir. Sweep trials share a
group (the sweep dir) and carry their trial number; every run is tagged with its prompt format.

Without an API key or a network the run is written offline (``wandb sync`` uploads it later) and says so once.
The key itself is read by wandb from the environment or its own login file and is never put into a config.
"""

from __future__ import annotations

import netrc
import os
import sys
from pathlib import Path
from typing import Any, Protocol

_told_offline = False


class Tracker(Protocol):
    def log(self, metrics: dict[str, float], step: int) -> None: ...

    def log_evaluation(self, scores: dict[str, Any], predictions: list[dict[str, Any]]) -> None: ...

    def finish(self, failed: bool) -> None: ...


class NullTracker:
    def log(self, metrics: dict[str, float], step: int) -> None:
        pass

    def log_evaluation(self, scores: dict[str, Any], predictions: list[dict[str, Any]]) -> None:
        pass

    def finish(self, failed: bool) -> None:
        pass


def has_wandb_credentials() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        auth = netrc.netrc(os.environ.get("NETRC") or None)
    except (OSError, netrc.NetrcParseError):
        return False
    host = os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai").split("//")[-1].split("/")[0]
    return auth.authenticators(host) is not None


def resolve_mode(configured: str) -> str:
    """``online``, ``offline`` or ``disabled``: WANDB_MODE wins, then the config; ``auto`` needs credentials."""
    mode = os.environ.get("WANDB_MODE") or configured
    if mode == "dryrun":
        mode = "offline"
    if mode == "auto":
        mode = "online" if has_wandb_credentials() else "offline"
    if mode not in ("online", "offline", "disabled"):
        raise ValueError(f"logger.mode must be auto, online, offline or disabled, got {mode!r}")
    return mode


def _say_offline_once(reason: str, run_dir: Path) -> None:
    global _told_offline
    if not _told_offline:
        print(f"[sftlab] W&B: {reason}; logging offline under {run_dir}/wandb (upload later with `wandb sync`)")
        _told_offline = True


class WandbTracker:
    def __init__(
        self,
        logger_cfg: Any,
        config: dict[str, Any],
        run_dir: Path,
        name: str,
        group: str | None,
        tags: list[str],
        extra_config: dict[str, Any],
    ):
        import wandb

        self._wandb = wandb
        self.sample_rows = int(logger_cfg.sample_table_rows)
        self.log_adapter = bool(logger_cfg.log_adapter)
        self.run_dir = run_dir
        mode = resolve_mode(str(logger_cfg.mode))
        if mode == "offline":
            _say_offline_once("no API key found", run_dir)
        kwargs = dict(
            project=logger_cfg.project,
            entity=logger_cfg.entity,
            name=name,
            group=group,
            tags=tags,
            config={**config, **extra_config},
            dir=str(run_dir),
            reinit="finish_previous",
            settings=wandb.Settings(init_timeout=60, silent=True, console="off"),
        )
        try:
            self.run = wandb.init(mode=mode, **kwargs)
        except Exception as error:  # no network, server down: never block training on tracking
            if mode != "online":
                raise
            _say_offline_once(f"cannot reach the server ({type(error).__name__})", run_dir)
            self.run = wandb.init(mode="offline", **kwargs)

    def log(self, metrics: dict[str, float], step: int) -> None:
        self.run.log({_namespaced(key): value for key, value in metrics.items()}, step=step)

    def log_evaluation(self, scores: dict[str, Any], predictions: list[dict[str, Any]]) -> None:
        summary: dict[str, Any] = {f"translation/macro/{name}": value for name, value in scores["macro"].items()}
        for direction, entry in scores["directions"].items():
            for name in ("bleu", "chrf", "chrf_pp", "empty", "truncated"):
                summary[f"translation/{direction}/{name}"] = entry[name]
        table = self._wandb.Table(columns=["direction", "source", "reference", "hypothesis"])
        for row in _spread_sample(predictions, self.sample_rows):
            table.add_data(row["direction"], row["source"], row["reference"], row["hypothesis"])
        summary["translation/samples"] = table
        self.run.log(summary)
        self.run.summary.update({k: v for k, v in summary.items() if not k.endswith("samples")})

    def finish(self, failed: bool) -> None:
        if self.log_adapter and not failed and (self.run_dir / "adapter").is_dir():
            artifact = self._wandb.Artifact(name=f"adapter-{self.run.id}", type="model")
            artifact.add_dir(str(self.run_dir / "adapter"))
            self.run.log_artifact(artifact)
        self.run.finish(exit_code=1 if failed else 0)


def _namespaced(key: str) -> str:
    if key.startswith("eval_"):
        return f"eval/{key[5:]}"
    return f"train/{key.removeprefix('train_')}"


def _spread_sample(rows: list[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    """Up to ``count`` rows spread over the directions, in order."""
    if len(rows) <= count:
        return rows
    stride = len(rows) / count
    return [rows[int(i * stride)] for i in range(count)]


def create_tracker(
    logger_cfg: Any,
    config: dict[str, Any],
    run_dir: Path,
    name: str,
    group: str | None,
    tags: list[str],
    extra_config: dict[str, Any],
) -> Tracker:
    if logger_cfg.name == "none":
        return NullTracker()
    if logger_cfg.name != "wandb":
        raise ValueError(f"unknown logger {logger_cfg.name!r} (expected wandb or none)")
    try:
        import wandb  # noqa: F401
    except ImportError:
        print("[sftlab] W&B: the wandb package does not import; tracking is off", file=sys.stderr)
        return NullTracker()
    return WandbTracker(logger_cfg, config, run_dir, name, group, tags, extra_config)
