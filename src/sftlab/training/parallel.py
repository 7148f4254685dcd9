"""DDP under torchrun / accelerate launch: what the effective batch means, and how the process group ends."""

from __future__ import annotations

import gc

import torch
from transformers import Trainer


def data_parallel_note(
    world_size: int, per_device_batch: int, accumulation: int, learning_rate: float, max_steps: int
) -> str:
    """The effective batch of a DDP run and what it means for the learning rate, which nothing scales for us."""
    single = per_device_batch * accumulation
    if max_steps > 0:
        schedule = f"trainer.max_steps={max_steps} covers {world_size}x the sequences of one process"
        keep = f"keep it: as many steps of the same size, each averaged over {world_size}x the sequences"
    else:
        schedule = f"an epoch takes 1/{world_size} of the optimizer steps of one process"
        keep = f"keep it: steps of the same size, 1/{world_size} as many per epoch"
    return (
        f"DDP: {world_size} processes x per-device batch {per_device_batch} x gradient accumulation {accumulation} = "
        f"effective batch {single * world_size} sequences per optimizer step ({single} on one process), so "
        f"{schedule}. trainer.learning_rate={learning_rate:g} is used as configured (TRL and transformers do not "
        f"scale it): for the same step size per sequence as on one process, scale it linearly "
        f"(trainer.learning_rate={learning_rate * world_size:g}), or {keep}."
    )


def end_data_parallel(trainer: Trainer) -> None:
    """End DDP after the last collective (training, the final evaluation loss), all ranks together.

    Rank 0 then goes on alone (generation, scores, tracking) while the others exit; with the group gone nothing there
    can wait on them. DDP's wrapper goes first: its reducer holds the process group, and when a garbage collection
    freed it later, on rank 0 alone after the others had exited, the gloo group's teardown hung joining its threads
    (seen in fresh-clone test runs). Then the barrier: a gloo rank that tore its group down while rank 0 was still
    saving hung in the teardown now and then, and NCCL's teardown is meant to be called by all ranks together. No-op
    for one process.
    """
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        trainer.model_wrapped = trainer.model
        trainer.accelerator.free_memory()  # the accelerator's references to the wrapper, optimizer and loaders
        gc.collect()
        # NCCL's barrier runs on a GPU: this rank's own, named so that it neither guesses nor warns.
        torch.distributed.barrier(device_ids=[torch.cuda.current_device()] if torch.cuda.is_available() else None)
        torch.distributed.destroy_process_group()
