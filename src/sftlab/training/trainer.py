"""Supervised fine-tuning with TRL's SFTTrainer: the trainer's settings, the run, its faults and its metrics.

Under torchrun / accelerate launch every rank runs this module with the same records; the Trainer gives each rank
its share of every batch and averages the gradients (DDP). Every rank trains and evaluates the loss (those hold
collectives); only rank 0 prints, saves the adapter and writes ``metrics.json``.
"""

from __future__ import annotations

import gc
import math
import resource
import time
from pathlib import Path
from typing import Any

import torch
from transformers import Trainer
from trl import SFTConfig, SFTTrainer

from sftlab import rundir
from sftlab.config import Precision, SaveStrategy, TrainerConfig
from sftlab.errors import TrainingFault
from sftlab.models.loading import release_adapter
from sftlab.training.callbacks import FaultGuard
from sftlab.training.parallel import data_parallel_note, end_data_parallel
from sftlab.training.setup import TrainingSetup
from sftlab.training.tokenize import TokenizedSplit, tokenize_split


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


def sft_config(setup: TrainingSetup, has_eval: bool) -> SFTConfig:
    """TRL's settings for this run; ``max_length`` is ``trainer.max_seq_length``, the one length of the run."""
    cfg = setup.trainer
    eval_steps = cfg.eval_steps if has_eval else 0
    return SFTConfig(
        output_dir=str(setup.run_dir / rundir.CHECKPOINTS),
        max_length=cfg.max_seq_length,
        completion_only_loss=cfg.completion_only_loss,
        padding_free=cfg.padding_free,
        packing=cfg.packing,
        packing_strategy="bfd",
        pad_to_multiple_of=cfg.pad_to_multiple_of,
        train_sampling_strategy="group_by_length" if cfg.group_by_length else "random",
        per_device_train_batch_size=cfg.per_device_train_batch_size,
        per_device_eval_batch_size=cfg.per_device_eval_batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        num_train_epochs=cfg.num_train_epochs,
        max_steps=cfg.max_steps,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type=cfg.lr_scheduler_type,
        warmup_steps=cfg.warmup_steps,
        weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.max_grad_norm,
        optim=cfg.optim,
        # Gradient checkpointing is switched on with the adapter (models.add_lora), in the backend's own way.
        gradient_checkpointing=False,
        # LoRA uses every adapter weight in every step: DDP need not search the graph for unused ones, a search that
        # also breaks with gradient checkpointing.
        ddp_find_unused_parameters=False,
        bf16=setup.precision == Precision.bf16,
        fp16=setup.precision == Precision.fp16,
        use_cpu=not torch.cuda.is_available(),
        eval_strategy="steps" if eval_steps > 0 else "no",
        eval_steps=eval_steps or None,
        eval_on_start=cfg.eval_on_start and eval_steps > 0,
        logging_steps=cfg.logging_steps,
        logging_first_step=True,
        # The filter reads every micro-step's loss on the host, a GPU sync, to replace a non-finite loss in the log
        # by the average so far; sftlab wants that loss seen (FaultGuard stops the run on it).
        logging_nan_inf_filter=False,
        save_strategy=save_strategy(cfg),
        save_steps=cfg.save_steps or 500,
        save_total_limit=cfg.save_total_limit,
        seed=setup.seed,
        data_seed=setup.seed,
        dataloader_num_workers=cfg.dataloader_num_workers,
        include_num_input_tokens_seen="non_padding",
        report_to="none",
        disable_tqdm=False,
        dataset_num_proc=None,
    )


def save_strategy(cfg: TrainerConfig) -> str:
    """Checkpoints per epoch, every ``save_steps`` (none when 0), or none."""
    if cfg.save_strategy == SaveStrategy.steps:
        return "steps" if cfg.save_steps > 0 else "no"
    return cfg.save_strategy.value


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


def peak_memory() -> tuple[float, str]:
    """The process's peak memory in GiB and what was measured: CUDA's allocations, or the CPU's resident set."""
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**30, "cuda_allocated"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, "cpu_rss"  # ru_maxrss is in KiB on Linux


def collapse_note(history: list[dict[str, Any]], vocab_size: int) -> str | None:
    """Why a finished run learned nothing, or None: every gradient norm zero (nothing reached the adapter).

    Such a run ends without an error and a sweep would score it like any other, so it is named in metrics.json and
    the summary. The loss is compared with ln(vocabulary), the loss of a model that predicts every token equally.
    """
    norms = [float(entry["grad_norm"]) for entry in history if "grad_norm" in entry and "loss" in entry]
    losses = [float(entry["loss"]) for entry in history if "loss" in entry]
    if not norms or max(norms) > 1e-12:
        return None
    uniform = math.log(vocab_size) if vocab_size > 1 else float("nan")
    return (
        f"every gradient norm was 0 over {len(norms)} logged steps, so the adapter did not change; the loss stayed at "
        f"{losses[-1]:.4f} (ln(vocabulary) = {uniform:.4f}): check the model's weights, the LoRA target modules and "
        "that the completions are not all masked"
    )


def _interrupted(trainer: Trainer, run_dir: Path) -> TrainingFault:
    """The interrupt as a fault whose message says what was saved, and how to resume only when something was."""
    step = trainer.state.global_step
    checkpoints = sorted((run_dir / rundir.CHECKPOINTS).glob("checkpoint-*"))
    if not checkpoints:
        return TrainingFault(f"interrupted at step {step}; no checkpoint was saved yet", interrupted=True)
    return TrainingFault(
        f"interrupted at step {step}; {len(checkpoints)} checkpoint(s) kept in {run_dir / rundir.CHECKPOINTS}, the "
        f"last {checkpoints[-1].name} (resume with trainer.resume_from_checkpoint=true hydra.run.dir={run_dir})",
        interrupted=True,
    )


def _announce(setup: TrainingSetup, train: TokenizedSplit, val: TokenizedSplit | None, world_size: int) -> None:
    """What rank 0 says before training: truncated records, the autotune plan, a DDP launch's effective batch."""
    cfg = setup.trainer
    for name, split in (("train", train), ("validation", val)):
        if split is not None and (split.truncated or split.dropped):
            print(
                f"[sftlab] {name}: {split.truncated} of {split.records} records cut at "
                f"max_seq_length={cfg.max_seq_length}, {split.dropped} dropped (prompt alone too long)"
            )
    if setup.autotune is not None:
        print(f"[sftlab] trainer.autotune: {setup.autotune.plan.describe()}", flush=True)
    if world_size > 1:
        note = data_parallel_note(
            world_size,
            cfg.per_device_train_batch_size,
            cfg.gradient_accumulation_steps,
            cfg.learning_rate,
            cfg.max_steps,
        )
        print(f"[sftlab] {note}", flush=True)


def run_training(setup: TrainingSetup) -> rundir.Metrics:
    """Train, save the adapter and tokenizer, write metrics.json (rank 0), end DDP; returns the metrics.

    Under ``trainer.autotune`` an out-of-memory error trains again from a fresh adapter with the next plan, and
    ``setup.model`` and ``setup.trainer`` become that plan's.
    """
    cfg = setup.trainer
    max_length = cfg.max_seq_length
    tokenized = (setup.prompt_format, setup.tokenizer, max_length, cfg.completion_only_loss)
    train = tokenize_split(setup.train_records, *tokenized, "train")
    val = tokenize_split(setup.val_records, *tokenized, "validation") if setup.val_records and cfg.eval_steps else None
    result = None
    while result is None:
        cfg = setup.trainer
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        trainer = SftlabTrainer(
            model=setup.model,
            args=sft_config(setup, has_eval=val is not None),
            train_dataset=train.dataset,
            eval_dataset=val.dataset if val is not None else None,
            processing_class=setup.tokenizer,
            callbacks=[FaultGuard(), *setup.callbacks],
        )
        main, world_size = trainer.is_world_process_zero(), trainer.args.world_size
        if main:
            _announce(setup, train, val, world_size)
        started = time.perf_counter()
        try:  # commands.train checked that a resumed run has a checkpoint
            result = trainer.train(resume_from_checkpoint=True if cfg.resume_from_checkpoint else None)
        except torch.OutOfMemoryError:
            pass  # handled below, outside the except block, whose traceback would keep the step's tensors alive
        except KeyboardInterrupt:
            raise _interrupted(trainer, setup.run_dir) from None
        if result is None:
            step, trainer = trainer.state.global_step, None
            _fall_back(setup, step, world_size)
    runtime = time.perf_counter() - started
    metrics = _metrics(trainer, result.training_loss, runtime, setup, train, val)
    if setup.autotune is not None:
        metrics.memory_plan = setup.autotune.to_json()
        if main:
            longest = max((len(ids) for ids in train.dataset["input_ids"]), default=max_length)
            setup.autotune.record(metrics.peak_memory_gib, metrics.steady_tokens_per_second, longest)
    if cfg.save_adapter:
        adapter_dir = setup.run_dir / rundir.ADAPTER
        if main:  # the ranks hold the same weights: DDP keeps them in step
            trainer.model.save_pretrained(str(adapter_dir))
            setup.tokenizer.save_pretrained(str(adapter_dir))
        metrics.adapter_dir = str(adapter_dir)
    if main:
        rundir.write_record(setup.run_dir, metrics)
    end_data_parallel(trainer)
    return metrics


def _fall_back(setup: TrainingSetup, step: int, world_size: int) -> None:
    """After CUDA ran out of memory: a fresh adapter under trainer.autotune's next plan, or the fault.

    Training starts again from step 0 with the same seed, as if the run had begun with that plan. Not under DDP: the
    other ranks would wait for this one in a collective.
    """
    cfg = setup.trainer
    tuner = setup.autotune
    plan = tuner.fallback() if tuner is not None and world_size == 1 else None
    if plan is None:
        raise TrainingFault(
            f"CUDA out of memory at step {step} (batch {cfg.per_device_train_batch_size} x {cfg.max_seq_length} "
            "tokens); lower trainer.per_device_train_batch_size or trainer.max_seq_length"
        )
    print(f"[sftlab] CUDA out of memory at step {step}; trainer.autotune falls back to {plan.describe()}", flush=True)
    release_adapter(setup.model)
    setup.model = None
    gc.collect()
    torch.cuda.empty_cache()
    setup.model = setup.fresh_model(plan.checkpointing)
    setup.trainer = tuner.apply(setup.trainer)


def _metrics(
    trainer: Trainer,
    training_loss: float,
    runtime: float,
    setup: TrainingSetup,
    train: TokenizedSplit,
    val: TokenizedSplit | None,
) -> rundir.Metrics:
    """The run's metrics.json, after a final evaluation loss at the last step when the schedule ended between two."""
    history = trainer.state.log_history
    train_losses = [(entry["step"], entry["loss"]) for entry in history if "loss" in entry]
    eval_losses = [(entry["step"], entry["eval_loss"]) for entry in history if "eval_loss" in entry]
    if val is not None and (not eval_losses or eval_losses[-1][0] != trainer.state.global_step):
        eval_losses.append((trainer.state.global_step, trainer.evaluate()["eval_loss"]))
    tokens_seen = int(trainer.state.num_input_tokens_seen or 0)
    peak_gib, peak_kind = peak_memory()
    cfg = setup.trainer
    return rundir.Metrics(
        train_loss=float(training_loss),
        first_train_loss=train_losses[0][1] if train_losses else None,
        last_train_loss=train_losses[-1][1] if train_losses else None,
        eval_loss=eval_losses[-1][1] if eval_losses else None,
        steps=trainer.state.global_step,
        epochs=float(trainer.state.epoch or 0.0),
        world_size=trainer.args.world_size,
        effective_batch_size=cfg.per_device_train_batch_size
        * cfg.gradient_accumulation_steps
        * trainer.args.world_size,
        train_runtime_s=runtime,
        train_tokens=tokens_seen,  # every rank's tokens: the Trainer gathers the count
        tokens_per_second=tokens_seen / runtime if runtime > 0 else None,
        steady_tokens_per_second=steady_tokens_per_second(history),
        peak_memory_gib=peak_gib,
        peak_memory_kind=peak_kind,
        train_split=train.summary(),
        validation_split=val.summary() if val is not None else None,
        train_loss_history=train_losses,
        eval_loss_history=eval_losses,
        backend=setup.backend.value,
        precision=setup.precision.value,
        collapsed=collapse_note(history, len(setup.tokenizer)),
    )
