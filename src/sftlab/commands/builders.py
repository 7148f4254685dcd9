"""The parts a command's recipe is built from, one builder per component, shared by every command that needs it.

train, evaluate and ask load models the same way through :func:`base_model`; each builder takes the typed config
(``sftlab.config``) and decides its values once: ``trainer.max_seq_length`` is the length Unsloth loads with, the
adapter is made for, and training cuts at.

Importing this module loads no transformers, TRL or PEFT: a command calls :func:`backend` first, because Unsloth must
patch those libraries before they load, and only then the builders that use them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode

from sftlab import rundir
from sftlab.config import Backend, LoggerConfig, Precision, PromptConfig, TrainConfig
from sftlab.data.prompts import PromptFormat
from sftlab.models import loading as models
from sftlab.models.backends import resolve_backend, use_device
from sftlab.process import Process
from sftlab.rundir import RunRecord
from sftlab.sweep import trial
from sftlab.tracking import NullTracker, Tracker, create_tracker
from sftlab.training.provenance import run_record
from sftlab.training.setup import TrainingSetup


@dataclass(frozen=True)
class Runtime:
    """Where and how this process runs the model: the backend, its GPU under DDP, the weights' precision."""

    backend: Backend
    device_index: int | None  # this rank's GPU under DDP; None for one process
    precision: Precision


@dataclass(frozen=True)
class BaseModel:
    """A loaded base model with its tokenizer, and where its weights came from."""

    model: Any
    tokenizer: Any
    path: str


def runtime(cfg: TrainConfig, process: Process) -> Runtime:
    """Resolve the backend (importing Unsloth when chosen) on this rank's GPU; call before any other builder."""
    # Before resolve_backend: importing Unsloth opens CUDA on the current GPU, which must be this rank's own.
    device_index = use_device(process.local_rank) if process.distributed else None
    backend = resolve_backend(cfg.backend.name)
    return Runtime(backend, device_index, models.resolve_precision(cfg.trainer.precision))


def base_model(cfg: TrainConfig, run: Runtime) -> BaseModel:
    path = models.model_path(cfg.model, cfg.cache_dir)
    model, tokenizer = models.load_base(
        path, run.backend, cfg.model, run.precision, cfg.trainer.max_seq_length, run.device_index
    )
    return BaseModel(model, tokenizer, path)


def record(command: str, cfg: TrainConfig, run: Runtime) -> RunRecord:
    """run.json's reproducibility record, before the model loads (a run that dies loading it is still described)."""
    data_files = [*cfg.data.train_files, *cfg.data.val_files] if command == "train" else [cfg.eval.test_file]
    return run_record(command, cfg.seed, data_files, run.backend, models.model_path(cfg.model, cfg.cache_dir))


def describe_run(run_dir: Path, process: Process, record: RunRecord, **changes: Any) -> RunRecord:
    """run.json with ``changes``, written by rank 0 (first before the model loads, then as the run learns more)."""
    record = dataclasses.replace(record, **changes)
    if process.is_main:
        rundir.write_record(run_dir, record)
    return record


def prompt_format(prompt: PromptConfig, tokenizer: Any) -> PromptFormat:
    return PromptFormat(prompt, tokenizer=tokenizer)


def memory_plan(cfg: TrainConfig, base: BaseModel, run: Runtime, process: Process) -> Any:
    """``trainer.autotune``'s plan for this run (a ``training.memory_plan.Autotuner``), decided before the adapter
    exists; None when autotune is off, on CPU, or when no plan fits."""
    if not cfg.trainer.autotune:
        return None
    from sftlab.training.memory_plan import autotune

    return autotune(
        base.model,
        model_path=base.path,
        backend=run.backend.value,
        lora_r=cfg.lora.r,
        lora_targets=list(cfg.lora.target_modules),
        per_device_train_batch_size=cfg.trainer.per_device_train_batch_size,
        gradient_accumulation_steps=cfg.trainer.gradient_accumulation_steps,
        length=cfg.trainer.max_seq_length,
        cache_dir=cfg.cache_dir,
        budget_gib=cfg.trainer.memory_budget_gib,
        distributed=process.distributed,
    )


def lora_model(
    cfg: TrainConfig, base: BaseModel, run: Runtime, plan: Any = None, checkpointing: str | None = None
) -> Any:
    """A fresh adapter of ``cfg.lora`` on the base, seeded, with the configured gradient checkpointing, or the plan's
    (``checkpointing`` names a fallback plan's mode)."""
    if checkpointing is None:
        checkpointing = plan.plan.checkpointing if plan is not None else cfg.trainer.gradient_checkpointing
    return models.add_lora(base.model, cfg.lora, run.backend, checkpointing, cfg.seed, cfg.trainer.max_seq_length)


def sweep_context() -> dict[str, Any]:
    """The W&B group and trial facts of a multirun job (empty for a single run)."""
    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode != RunMode.MULTIRUN:
        return {}
    return {
        "group": str(Path(hydra_cfg.sweep.dir)),
        "job_num": hydra_cfg.job.num,
        "overrides": list(hydra_cfg.overrides.task),
    }


def tracker(cfg: TrainConfig, run_dir: Path, process: Process, job_type: str) -> Tracker:
    """The job's tracker on rank 0 (a W&B run, or nothing); the other ranks of a DDP launch track nothing."""
    if not process.is_main:
        return NullTracker()
    sweep = sweep_context()
    logger: LoggerConfig = cfg.logger
    return create_tracker(
        logger,
        dataclasses.asdict(cfg),
        run_dir,
        name=cfg.run_name,
        group=logger.group or sweep.get("group"),
        tags=[*logger.tags, f"prompt:{cfg.prompt.name}", f"model:{cfg.model.name}"],
        extra_config={"run_dir": str(run_dir), "sweep": sweep},
        job_type=job_type,
    )


def training_setup(
    cfg: TrainConfig,
    run: Runtime,
    model: Any,
    tokenizer: Any,
    prompt_format: PromptFormat,
    splits: tuple[list[dict], list[dict]],
    run_dir: Path,
    tracker: Tracker,
    plan: Any = None,
    base: BaseModel | None = None,
) -> TrainingSetup:
    """Training's inputs, with its callbacks: every log to the tracker, the sweep trial's pruning in a sweep; with
    ``plan`` (``memory_plan``), its batch and accumulation, and fresh adapters on ``base`` for its fallbacks."""
    # Imported here, not at the top: they subclass transformers' TrainerCallback (see the module docstring).
    from sftlab.training.callbacks import PruningCallback, StepReporter

    reporter = trial.current()
    callbacks = [StepReporter(tracker.log), *([PruningCallback(reporter)] if reporter is not None else [])]
    return TrainingSetup(
        model=model,
        tokenizer=tokenizer,
        prompt_format=prompt_format,
        train_records=splits[0],
        val_records=splits[1],
        trainer=plan.apply(cfg.trainer) if plan is not None else cfg.trainer,
        seed=cfg.seed,
        precision=run.precision,
        run_dir=run_dir,
        backend=run.backend,
        callbacks=callbacks,
        autotune=plan,
        fresh_model=(lambda mode: lora_model(cfg, base, run, checkpointing=mode)) if base is not None else None,
    )
