"""What one training run is handed, built by the entry point; a plain record, free of transformers and TRL."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sftlab.config import Backend, Precision, TrainerConfig
from sftlab.data.prompts import PromptFormat

if TYPE_CHECKING:
    from transformers import TrainerCallback


@dataclass
class TrainingSetup:
    """Everything one training run needs, built by the entry point."""

    model: Any  # base model with a fresh LoRA adapter
    tokenizer: Any
    prompt_format: PromptFormat
    train_records: list[dict]
    val_records: list[dict]
    trainer: TrainerConfig
    seed: int
    precision: Precision  # resolved: bf16 | fp16 | fp32
    run_dir: Path
    backend: Backend
    callbacks: list[TrainerCallback] = field(default_factory=list)
    # trainer.autotune's plan (training.memory_plan.Autotuner; ``trainer`` above already holds its batch), and how to
    # make a fresh adapter for a fallback plan's checkpointing mode after an out-of-memory error
    autotune: Any = None
    fresh_model: Callable[[str], Any] | None = None
