"""``python -m sftlab.train``: LoRA SFT of the configured model, then translation evaluation.

The Hydra task returns the configured objective (``eval.objective``; a list of values for a list of objectives), so
a sweeper can optimise it. The recipe reads top to bottom: check the config, pick the backend, read the data, load
the model, train, evaluate, record.

``torchrun --nproc_per_node N -m sftlab.train`` (or ``accelerate launch --num_processes N -m sftlab.train``) runs the
same job as one DDP training over N processes: every rank loads the model onto its own GPU and trains; rank 0 alone
writes the run dir, evaluates the translations and tracks the run, and only rank 0 returns the objective.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from sftlab import objectives, rundir
from sftlab.commands import builders
from sftlab.commands.job import entry_point
from sftlab.config import TrainConfig, register_configs, to_schema
from sftlab.data.prompts import PromptFormat
from sftlab.data.records import TranslationPair
from sftlab.data.splits import load_splits, load_test_pairs
from sftlab.errors import SftlabError
from sftlab.models.loading import describe, for_inference, release_adapter
from sftlab.process import Process, this_process
from sftlab.rundir import EvalScores, Metrics
from sftlab.tracking import Tracker

register_configs()


def train_task(raw: DictConfig, run_dir: Path) -> float | list[float] | None:
    """Train and evaluate; returns the objective(s). Under DDP the ranks other than 0 train, then return None."""
    cfg = to_schema(raw)
    process = this_process()
    check_config(cfg, run_dir, process.distributed)
    # Importing Unsloth (builders.runtime) keeps the frames on the stack alive for good, this one included (found on
    # the H200 with bench/live_tensors.py, issue 21). The models live in train_and_evaluate's frame, which comes
    # after: were they locals here, a sweep would keep its first trial's base model and adapter to the end.
    run = builders.runtime(cfg, process)
    return train_and_evaluate(cfg, run, process, run_dir)


def train_and_evaluate(
    cfg: TrainConfig, run: builders.Runtime, process: Process, run_dir: Path
) -> float | list[float] | None:
    """The recipe once the backend is imported: data, model, training, evaluation, record."""
    from sftlab.training.trainer import run_training  # after the backend: Unsloth patches TRL and transformers first

    splits = load_splits(cfg.data, cfg.seed)
    pairs = load_test_pairs(cfg.eval)
    tracker = builders.tracker(cfg, run_dir, process, job_type="train")
    record = builders.describe_run(run_dir, process, builders.record("train", cfg, run), tracking=tracker.link())
    failed, scores, model = True, None, None
    try:
        base = builders.base_model(cfg, run)
        prompt_format = builders.prompt_format(cfg.prompt, base.tokenizer)
        plan = builders.memory_plan(cfg, base, run, process)  # before the adapter: it sets the checkpointing
        model = builders.lora_model(cfg, base, run, plan)
        tracker.log_model(describe(model))
        setup = builders.training_setup(
            cfg, run, model, base.tokenizer, prompt_format, splits, run_dir, tracker, plan, base
        )
        metrics = run_training(setup)
        model = setup.model  # a fallback plan of trainer.autotune trained a fresh adapter
        if metrics.memory_plan is not None:
            builders.describe_run(run_dir, process, record, memory_plan=metrics.memory_plan)
        if process.is_main:  # the other ranks are done: the process group is gone, rank 0 evaluates alone
            scores = score(cfg, run, model, base.tokenizer, prompt_format, pairs, run_dir, tracker, metrics)
            result = objectives.task_result(cfg.eval.objective, scores and scores.to_json(), metrics.to_json())
        failed = False
    finally:
        tracker.finish(failed=failed)
        if model is not None:
            release_adapter(model)
    if not process.is_main:
        return None
    print_summary(run_dir, metrics, scores, cfg.eval.objective, result)
    return result


def score(
    cfg: TrainConfig,
    run: builders.Runtime,
    model: Any,
    tokenizer: Any,
    prompt_format: PromptFormat,
    pairs: list[TranslationPair],
    run_dir: Path,
    tracker: Tracker,
    metrics: Metrics,
) -> EvalScores | None:
    """Log the training, then the translation scores of the trained model (eval.json); None when evaluation is off."""
    from sftlab.evaluation.translation import evaluate_translations

    tracker.log_training(metrics)
    if not cfg.eval.enabled:
        return None
    for_inference(model, run.backend)
    scores, predictions = evaluate_translations(model, tokenizer, prompt_format, pairs, cfg.eval, run_dir)
    rundir.write_record(run_dir, scores)
    tracker.log_evaluation(scores, predictions)
    return scores


def check_config(cfg: TrainConfig, run_dir: Path, distributed: bool) -> None:
    """What the config alone gets wrong, before any model loads."""
    for objective in objectives.names(cfg.eval.objective):
        if objective == "eval_loss" and cfg.trainer.eval_steps <= 0:
            raise SftlabError("eval.objective=eval_loss needs trainer.eval_steps > 0")
        if objective in objectives.SCORES and not cfg.eval.enabled:
            raise SftlabError(f"eval.objective={objective} needs the translation evaluation (eval.enabled=true)")
    checkpoints = run_dir / rundir.CHECKPOINTS
    if cfg.trainer.resume_from_checkpoint and not list(checkpoints.glob("checkpoint-*")):
        raise SftlabError(
            f"trainer.resume_from_checkpoint=true but {checkpoints} holds no checkpoint; "
            "point hydra.run.dir at the run to resume"
        )
    if distributed and HydraConfig.get().mode == RunMode.MULTIRUN:
        # A DDP launch trains one job: under a sweep every rank would run a sweeper of its own. Exits the whole
        # sweep, not one trial (a failed trial would let the sweep go on to the next).
        raise SystemExit(
            "\nerror: torchrun / accelerate launch runs one training job over several processes; "
            "run sweeps (-m) without it"
        )


def print_summary(
    run_dir: Path,
    metrics: Metrics,
    scores: EvalScores | None,
    objective: str | list[str],
    result: float | list[float],
) -> None:
    from rich.console import Console

    from sftlab.evaluation.translation import print_scores

    console = Console()
    # Single batches' losses are noisy; the evaluation loss on a fixed split is what shows learning.
    evals = [loss for _, loss in metrics.eval_loss_history]
    eval_text = ""
    if len(evals) == 1:
        eval_text = f", eval loss {evals[0]:.3f}"
    elif evals:
        eval_text = f", eval loss {evals[0]:.3f} -> {evals[-1]:.3f}"
    console.print(
        f"[bold]trained[/bold] {metrics.steps} steps: mean train loss {metrics.train_loss:.3f}{eval_text}, "
        f"{metrics.tokens_per_second or 0:.0f} tokens/s, peak {metrics.peak_memory_gib:.2f} GiB"
    )
    if metrics.memory_plan:
        plan = metrics.memory_plan
        console.print(
            f"trainer.autotune: batch {plan['per_device_train_batch_size']} x accumulation "
            f"{plan['gradient_accumulation_steps']}, gradient checkpointing {plan['checkpointing']}"
            + (f" ({len(plan['failed'])} plan(s) ran out of memory first)" if plan["failed"] else ""),
            markup=False,
        )
    if metrics.collapsed:
        console.print(f"[bold red]warning[/bold red]: the run learned nothing: {metrics.collapsed}", markup=True)
    if scores is not None:
        print_scores(scores)
    if metrics.adapter_dir:
        console.print(f"adapter: {metrics.adapter_dir}")
    console.print(f"metrics: {run_dir / rundir.METRICS}" + (f", scores: {run_dir / rundir.EVAL}" if scores else ""))
    names = objectives.names(objective)
    values = [result] if isinstance(result, float) else result
    console.print(", ".join(f"objective {name} = {value:.4f}" for name, value in zip(names, values, strict=True)))


@hydra.main(version_base="1.3", config_path="pkg://sftlab.conf", config_name="train")
def main(cfg: DictConfig) -> float | list[float] | None:
    return entry_point(train_task)(cfg)


if __name__ == "__main__":
    main()
