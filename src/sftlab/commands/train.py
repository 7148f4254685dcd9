"""``python -m sftlab.train``: LoRA SFT of the configured model, then translation evaluation.

The Hydra task returns the configured objective (``eval.objective``), so a sweeper can optimise it.

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
from omegaconf import DictConfig, OmegaConf

from sftlab import objectives, rundir
from sftlab.commands.job import entry_point
from sftlab.config import register_configs
from sftlab.data.splits import load_splits, load_test_pairs
from sftlab.errors import SftlabError
from sftlab.models.backends import resolve_backend, use_device
from sftlab.process import this_process
from sftlab.sweep import trial
from sftlab.tracking import NullTracker, create_tracker

register_configs()


def check_objective(cfg: DictConfig) -> None:
    objective = cfg.eval.objective
    objectives.check(objective)
    if objective == "eval_loss" and cfg.trainer.eval_steps <= 0:
        raise SftlabError("eval.objective=eval_loss needs trainer.eval_steps > 0")
    if not objective.endswith("_loss") and not cfg.eval.enabled:
        raise SftlabError(f"eval.objective={objective} needs the translation evaluation (eval.enabled=true)")


def sweep_context() -> dict[str, Any]:
    """The W&B group and trial facts of a multirun job (empty for a single run)."""
    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode is None or hydra_cfg.mode.name != "MULTIRUN":
        return {}
    return {
        "group": str(Path(hydra_cfg.sweep.dir)),
        "job_num": hydra_cfg.job.num,
        "overrides": list(hydra_cfg.overrides.task),
    }


def check_resumable(cfg: DictConfig, run_dir: Path) -> None:
    """Before any model loads: resuming needs a checkpoint in this run dir."""
    checkpoints = run_dir / rundir.CHECKPOINTS
    if cfg.trainer.resume_from_checkpoint and not list(checkpoints.glob("checkpoint-*")):
        raise SftlabError(
            f"trainer.resume_from_checkpoint=true but {checkpoints} holds no checkpoint; "
            "point hydra.run.dir at the run to resume"
        )


def check_single_job(distributed: bool) -> None:
    """A DDP launch trains one job: under a sweep every rank would run a sweeper of its own and ask for its own
    trials. Exits the whole sweep, not one trial (a failed trial would let the sweep go on to the next)."""
    if distributed and HydraConfig.get().mode == RunMode.MULTIRUN:
        raise SystemExit(
            "\nerror: torchrun / accelerate launch runs one training job over several processes; "
            "run sweeps (-m) without it"
        )


def train_task(cfg: DictConfig, run_dir: Path) -> float | None:
    """Train and evaluate; returns the objective. Under DDP the ranks other than 0 train, then return None."""
    check_objective(cfg)
    check_resumable(cfg, run_dir)
    process = this_process()
    check_single_job(process.distributed)
    # Before resolve_backend: importing Unsloth opens CUDA on the current GPU, which must be this rank's own.
    device_index = use_device(process.local_rank) if process.distributed else None
    backend = resolve_backend(cfg.backend.name)
    # Imported after resolve_backend: Unsloth must patch transformers, TRL and PEFT before they load.
    from sftlab.data.prompts import PromptFormat
    from sftlab.evaluation import translation as evaluation
    from sftlab.models import loading as models
    from sftlab.training import provenance
    from sftlab.training import trainer as training
    from sftlab.training.callbacks import PruningCallback, StepReporter

    train_records, val_records = load_splits(cfg.data, cfg.seed)
    pairs = load_test_pairs(cfg.eval)
    precision = models.resolve_precision(cfg.trainer.precision)
    path = models.model_path(cfg.model, cfg.cache_dir)
    data_files = [*cfg.data.train_files, *cfg.data.val_files]
    if process.is_main:
        rundir.write_json(run_dir / rundir.RUN, provenance.run_record(cfg.seed, data_files, backend, path))

    model, tokenizer = models.load_base(
        path, backend, cfg.model.load_in_4bit, precision, cfg.trainer.max_seq_length, device_index
    )
    prompt_format = PromptFormat(OmegaConf.to_container(cfg.prompt, resolve=True), tokenizer=tokenizer)
    peft_model = models.add_lora(model, cfg.lora, backend, cfg.trainer.gradient_checkpointing, cfg.seed)
    sweep = sweep_context()
    reporter = trial.current()
    pruning = [PruningCallback(reporter)] if reporter is not None else []
    tracker = (
        create_tracker(
            cfg.logger,
            OmegaConf.to_container(cfg, resolve=True),
            run_dir,
            name=cfg.run_name,
            group=cfg.logger.group or sweep.get("group"),
            tags=[*cfg.logger.tags, f"prompt:{cfg.prompt.name}", f"model:{cfg.model.name}"],
            extra_config={"run_dir": str(run_dir), "sweep": sweep},
        )
        if process.is_main
        else NullTracker()
    )
    failed = True
    try:
        metrics = training.run_training(
            training.TrainingSetup(
                model=peft_model,
                tokenizer=tokenizer,
                prompt_format=prompt_format,
                train_records=train_records,
                val_records=val_records,
                trainer_cfg=cfg.trainer,
                seed=cfg.seed,
                precision=precision,
                run_dir=run_dir,
                backend=backend,
                callbacks=[StepReporter(tracker.log), *pruning],
            )
        )
        if not process.is_main:  # its part is done: the process group is gone, rank 0 evaluates alone
            failed = False
            return None
        tracker.log_training(metrics)
        scores = None
        if cfg.eval.enabled:
            models.for_inference(peft_model, backend)
            scores, predictions = evaluation.evaluate_translations(
                peft_model, tokenizer, prompt_format, pairs, cfg.eval, run_dir
            )
            tracker.log_evaluation(scores, predictions)
        value = objectives.value(cfg.eval.objective, scores, metrics)
        failed = False
    finally:
        tracker.finish(failed=failed)
        models.release_adapter(peft_model)
    print_summary(run_dir, metrics, scores, cfg.eval.objective, value)
    return value


def print_summary(run_dir: Path, metrics: dict, scores: dict | None, objective: str, value: float) -> None:
    from rich.console import Console

    from sftlab.evaluation.translation import print_scores

    console = Console()
    # Single batches' losses are noisy; the evaluation loss on a fixed split is what shows learning.
    evals = [loss for _, loss in metrics["eval_loss_history"]]
    eval_text = ""
    if len(evals) == 1:
        eval_text = f", eval loss {evals[0]:.3f}"
    elif evals:
        eval_text = f", eval loss {evals[0]:.3f} -> {evals[-1]:.3f}"
    console.print(
        f"[bold]trained[/bold] {metrics['steps']} steps: mean train loss {metrics['train_loss']:.3f}{eval_text}, "
        f"{metrics['tokens_per_second']:.0f} tokens/s, peak {metrics['peak_memory_gib']:.2f} GiB"
    )
    if scores is not None:
        print_scores(scores)
    if metrics.get("adapter_dir"):
        console.print(f"adapter: {metrics['adapter_dir']}")
    console.print(f"metrics: {run_dir / rundir.METRICS}" + (f", scores: {run_dir / rundir.EVAL}" if scores else ""))
    console.print(f"objective {objective} = {value:.4f}")


@hydra.main(version_base="1.3", config_path="pkg://sftlab.conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    return entry_point(train_task)(cfg)


if __name__ == "__main__":
    main()
