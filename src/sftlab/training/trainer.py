"""Supervised fine-tuning with TRL's SFTTrainer: the trainer's settings, the run, its faults and its metrics.

Under torchrun / accelerate launch every rank runs this module with the same records; the Trainer gives each rank
its share of every batch and averages the gradients (DDP). Every rank trains and evaluates the loss (those hold
collectives); only rank 0 prints, saves the adapter and writes ``metrics.json``.
"""

from __future__ import annotations

import resource
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import Trainer, TrainerCallback
from trl import SFTConfig, SFTTrainer

from sftlab import rundir
from sftlab.data.prompts import PromptFormat
from sftlab.errors import TrainingFault
from sftlab.training.callbacks import FaultGuard
from sftlab.training.parallel import data_parallel_note, end_data_parallel
from sftlab.training.tokenize import tokenize_split


class SftlabTrainer(SFTTrainer):
    """SFTTrainer, with transformers' own loss on CPU.

    TRL computes the loss through a tiled LM head written for Triton; without a GPU its PyTorch fallback scores
    every position, prompt tokens included, and ran 2-3x slower than the model's plain cross-entropy on our CPU
    runs. On CUDA (Triton, Unsloth) TRL's path is kept.
    """

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if torch.cuda.is_available():
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        return Trainer.compute_loss(self, model, inputs, return_outputs, num_items_in_batch)


@dataclass
class TrainingSetup:
    """Everything one training run needs, built by the entry point."""

    model: Any  # base model with a fresh LoRA adapter
    tokenizer: Any
    prompt_format: PromptFormat
    train_records: list[dict]
    val_records: list[dict]
    trainer_cfg: Any
    seed: int
    precision: str  # resolved: bf16 | fp16 | fp32
    run_dir: Path
    backend: str
    callbacks: list[TrainerCallback] = field(default_factory=list)


def _sft_config(setup: TrainingSetup, has_eval: bool) -> SFTConfig:
    cfg = setup.trainer_cfg
    eval_steps = int(cfg.eval_steps) if has_eval else 0
    save_steps = int(cfg.save_steps)
    return SFTConfig(
        output_dir=str(setup.run_dir / rundir.CHECKPOINTS),
        max_length=int(cfg.max_seq_length),
        completion_only_loss=bool(cfg.completion_only_loss),
        padding_free=bool(cfg.padding_free),
        packing=bool(cfg.packing),
        packing_strategy="bfd",
        train_sampling_strategy="group_by_length" if cfg.group_by_length else "random",
        per_device_train_batch_size=int(cfg.per_device_train_batch_size),
        per_device_eval_batch_size=int(cfg.per_device_eval_batch_size),
        gradient_accumulation_steps=int(cfg.gradient_accumulation_steps),
        num_train_epochs=float(cfg.num_train_epochs),
        max_steps=int(cfg.max_steps),
        learning_rate=float(cfg.learning_rate),
        lr_scheduler_type=str(cfg.lr_scheduler_type),
        warmup_steps=float(cfg.warmup_steps),
        weight_decay=float(cfg.weight_decay),
        max_grad_norm=float(cfg.max_grad_norm),
        optim=str(cfg.optim),
        # Gradient checkpointing is switched on with the adapter (models.add_lora), in the backend's own way.
        gradient_checkpointing=False,
        # LoRA uses every adapter weight in every step: DDP need not search the graph for unused ones, a search that
        # also breaks with gradient checkpointing.
        ddp_find_unused_parameters=False,
        bf16=setup.precision == "bf16",
        fp16=setup.precision == "fp16",
        use_cpu=not torch.cuda.is_available(),
        eval_strategy="steps" if eval_steps > 0 else "no",
        eval_steps=eval_steps or None,
        eval_on_start=bool(cfg.eval_on_start) and eval_steps > 0,
        logging_steps=int(cfg.logging_steps),
        logging_first_step=True,
        save_strategy="steps" if save_steps > 0 else "no",
        save_steps=save_steps or 500,
        save_total_limit=int(cfg.save_total_limit),
        seed=setup.seed,
        data_seed=setup.seed,
        dataloader_num_workers=int(cfg.dataloader_num_workers),
        include_num_input_tokens_seen="non_padding",
        report_to="none",
        disable_tqdm=False,
        dataset_num_proc=None,
    )


def steady_tokens_per_second(history: list[dict[str, Any]], warmup_steps: int = 3) -> float | None:
    """Tokens/s between the first training log after ``warmup_steps`` and the last one (compilation excluded).

    Under DDP the Trainer's ``num_input_tokens_seen`` sums every rank's tokens: this is the whole launch's rate.
    """
    marks = [
        (entry["step"], entry["num_input_tokens_seen"], entry["train_runtime"])
        for entry in history
        if "loss" in entry and "num_input_tokens_seen" in entry and "train_runtime" in entry
    ]
    marks = [mark for mark in marks if mark[0] >= warmup_steps]
    if len(marks) < 2 or marks[-1][2] <= marks[0][2]:
        return None
    return (marks[-1][1] - marks[0][1]) / (marks[-1][2] - marks[0][2])


def peak_memory() -> dict[str, float | str]:
    if torch.cuda.is_available():
        return {
            "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30,
            "peak_memory_kind": "cuda_allocated",
        }
    # ru_maxrss is in KiB on Linux
    return {
        "peak_memory_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "peak_memory_kind": "cpu_rss",
    }


def run_training(setup: TrainingSetup) -> dict[str, Any]:
    """Train, save the adapter and tokenizer, write metrics.json (rank 0), end DDP; returns the metrics."""
    cfg = setup.trainer_cfg
    max_length = int(cfg.max_seq_length)
    train = tokenize_split(
        setup.train_records,
        setup.prompt_format,
        setup.tokenizer,
        max_length,
        cfg.completion_only_loss,
        "train",
    )
    val = (
        tokenize_split(
            setup.val_records,
            setup.prompt_format,
            setup.tokenizer,
            max_length,
            cfg.completion_only_loss,
            "validation",
        )
        if setup.val_records and int(cfg.eval_steps) > 0
        else None
    )
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    trainer = SftlabTrainer(
        model=setup.model,
        args=_sft_config(setup, has_eval=val is not None),
        train_dataset=train.dataset,
        eval_dataset=val.dataset if val is not None else None,
        processing_class=setup.tokenizer,
        callbacks=[FaultGuard(), *setup.callbacks],
    )
    main = trainer.is_world_process_zero()
    world_size = trainer.args.world_size
    effective_batch = int(cfg.per_device_train_batch_size) * int(cfg.gradient_accumulation_steps) * world_size
    for split_name, split in (("train", train), ("validation", val)):
        if main and split is not None and (split.truncated or split.dropped):
            print(
                f"[sftlab] {split_name}: {split.truncated} of {split.records} records cut at "
                f"max_seq_length={max_length}, {split.dropped} dropped (prompt alone too long)"
            )
    if main and world_size > 1:
        note = data_parallel_note(
            world_size,
            int(cfg.per_device_train_batch_size),
            int(cfg.gradient_accumulation_steps),
            float(cfg.learning_rate),
            int(cfg.max_steps),
        )
        print(f"[sftlab] {note}", flush=True)
    resume = bool(cfg.resume_from_checkpoint)  # train.check_resumable saw a checkpoint there
    started = time.perf_counter()
    try:
        result = trainer.train(resume_from_checkpoint=True if resume else None)
    except torch.OutOfMemoryError:
        raise TrainingFault(
            f"CUDA out of memory at step {trainer.state.global_step} (batch {cfg.per_device_train_batch_size} x "
            f"{max_length} tokens); lower trainer.per_device_train_batch_size or trainer.max_seq_length"
        ) from None
    except KeyboardInterrupt:
        raise TrainingFault(
            f"interrupted at step {trainer.state.global_step}; checkpoints kept in {setup.run_dir / rundir.CHECKPOINTS}"
            " (resume with trainer.resume_from_checkpoint=true and the same hydra.run.dir)",
            interrupted=True,
        ) from None
    runtime = time.perf_counter() - started
    history = trainer.state.log_history
    train_losses = [(entry["step"], entry["loss"]) for entry in history if "loss" in entry]
    eval_losses = [(entry["step"], entry["eval_loss"]) for entry in history if "eval_loss" in entry]
    if val is not None and (not eval_losses or eval_losses[-1][0] != trainer.state.global_step):
        final_eval = trainer.evaluate()
        eval_losses.append((trainer.state.global_step, final_eval["eval_loss"]))
    tokens_seen = int(trainer.state.num_input_tokens_seen or 0)
    metrics: dict[str, Any] = {
        "train_loss": float(result.training_loss),
        "first_train_loss": train_losses[0][1] if train_losses else None,
        "last_train_loss": train_losses[-1][1] if train_losses else None,
        "eval_loss": eval_losses[-1][1] if eval_losses else None,
        "steps": trainer.state.global_step,
        "epochs": trainer.state.epoch,
        "world_size": world_size,
        "effective_batch_size": effective_batch,
        "train_runtime_s": runtime,
        "train_tokens": tokens_seen,  # every rank's tokens: the Trainer gathers the count
        "tokens_per_second": tokens_seen / runtime if runtime > 0 else None,
        "steady_tokens_per_second": steady_tokens_per_second(history),
        **peak_memory(),
        "train_split": train.summary(),
        "validation_split": val.summary() if val is not None else None,
        "train_loss_history": train_losses,
        "eval_loss_history": eval_losses,
        "backend": setup.backend,
        "precision": setup.precision,
    }
    if cfg.save_adapter:
        adapter_dir = setup.run_dir / rundir.ADAPTER
        if main:  # the ranks hold the same weights: DDP keeps them in step
            trainer.model.save_pretrained(str(adapter_dir))
            setup.tokenizer.save_pretrained(str(adapter_dir))
        metrics["adapter_dir"] = str(adapter_dir)
    if main:
        rundir.write_json(setup.run_dir / rundir.METRICS, metrics)
    end_data_parallel(trainer)
    return metrics
