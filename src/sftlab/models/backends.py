"""Which training backend runs (Unsloth on a CUDA GPU, transformers + PEFT elsewhere), and on which GPU.

Kept apart from the model code because it must run first: Unsloth patches transformers, TRL and PEFT when it is
imported, so the entry points call ``resolve_backend`` before anything imports those libraries; and importing
Unsloth opens CUDA on the current GPU, so a DDP rank calls ``use_device`` before that.
"""

from __future__ import annotations

import importlib.util
import os

import torch

from sftlab.config import Backend
from sftlab.errors import SftlabError


def unsloth_installed() -> bool:
    return importlib.util.find_spec("unsloth") is not None


def resolve_backend(requested: Backend) -> Backend:
    """``unsloth`` or ``hf`` for the configured ``backend.name``; imports Unsloth when it is chosen."""
    if requested == Backend.auto:
        requested = Backend.unsloth if torch.cuda.is_available() and unsloth_installed() else Backend.hf
    if requested == Backend.unsloth:
        if not torch.cuda.is_available():
            raise SftlabError("backend=unsloth needs a CUDA GPU; use backend=hf (or backend=auto) on this machine")
        if not unsloth_installed():
            raise SftlabError("backend=unsloth needs the GPU extra: pip install -e '.[gpu]'")
        import unsloth  # noqa: F401  (patches transformers/TRL/PEFT; must come first)
    return requested


def use_device(local_rank: int) -> int | None:
    """Make ``cuda:{local_rank}`` this process's GPU, as each rank of a DDP launch needs; None on CPU.

    The current device, not only the loader's target: bitsandbytes, Unsloth (from its import on) and the
    peak-memory counters all work on the current device, and a rank that touched cuda:0 first would hold memory there.
    """
    if not torch.cuda.is_available():
        return None
    count = torch.cuda.device_count()
    if local_rank >= count:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES", "all")
        raise SftlabError(
            f"LOCAL_RANK={local_rank}, but this node sees {count} CUDA device(s) (CUDA_VISIBLE_DEVICES={visible}); "
            f"launch at most {count} processes per node"
        )
    torch.cuda.set_device(local_rank)
    return local_rank
