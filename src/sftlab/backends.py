"""Which training backend runs: Unsloth on a CUDA GPU, transformers + PEFT elsewhere.

Kept apart from the model code because it must run first: Unsloth patches transformers, TRL and PEFT when it is
imported, so the entry points call ``resolve_backend`` before anything imports those libraries.
"""

from __future__ import annotations

import importlib.util

import torch

from sftlab.errors import SftlabError


def unsloth_installed() -> bool:
    return importlib.util.find_spec("unsloth") is not None


def resolve_backend(requested: str) -> str:
    """``unsloth`` or ``hf`` for the configured ``backend.name``; imports Unsloth when it is chosen."""
    requested = str(getattr(requested, "value", requested))
    if requested == "auto":
        requested = "unsloth" if torch.cuda.is_available() and unsloth_installed() else "hf"
    if requested == "unsloth":
        if not torch.cuda.is_available():
            raise SftlabError("backend=unsloth needs a CUDA GPU; use backend=hf (or backend=auto) on this machine")
        if not unsloth_installed():
            raise SftlabError("backend=unsloth needs the GPU extra: pip install -e '.[gpu]'")
        import unsloth  # noqa: F401  (patches transformers/TRL/PEFT; must come first)
    elif requested != "hf":
        raise SftlabError(f"unknown backend {requested!r} (expected auto, unsloth or hf)")
    return requested
