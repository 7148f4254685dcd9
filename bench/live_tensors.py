"""A Hydra callback for the benchmarks: after each job of a multirun, what the process still holds.

    python -m sftlab.train -m ... +hydra.callbacks.live_tensors._target_=live_tensors.LiveTensors

(with ``bench/`` on ``PYTHONPATH``). After each job, once Python's cycle collector has run, it prints one line:
``[live] {"job": ..., "allocated_gib": ..., "tensors": [...]}``, the allocator's count and the largest groups of
live tensors on the accelerator (or the CPU without one) by shape and dtype. A sweep's trials keep the base model
loaded, so what grows from one job to the next is what a trial left behind, or another base model (docs/benchmarks.md,
issue 21).
When more than one model (``*ForCausalLM``) is alive, ``held_by`` says what holds each: its chains of referrers up to
a module's globals or a class (the base a sweep keeps is held by ``sftlab.models.loading``'s ``_loaded``).
"""

from __future__ import annotations

import gc
import json
import sys
import types
from collections import Counter
from typing import Any

from hydra.experimental.callback import Callback

GIB = 2**30


def live_tensors(device_type: str, top: int = 8) -> list[dict[str, Any]]:
    """The ``top`` largest groups of live tensors on ``device_type``, each storage counted once."""
    import torch

    seen: set[int] = set()
    groups: Counter[tuple[str, str]] = Counter()
    counts: Counter[tuple[str, str]] = Counter()
    for obj in gc.get_objects():
        try:
            if not isinstance(obj, torch.Tensor) or obj.device.type != device_type or obj.is_meta:
                continue
            storage = obj.untyped_storage()
        except Exception:  # tensors without storage (functional wrappers, a compiler's fake tensors), dead proxies
            continue
        if storage.data_ptr() in seen or storage.nbytes() == 0:
            continue
        seen.add(storage.data_ptr())
        key = (str(tuple(obj.shape)), str(obj.dtype).removeprefix("torch."))
        groups[key] += storage.nbytes()
        counts[key] += 1
    return [
        {"shape": shape, "dtype": dtype, "count": counts[shape, dtype], "mib": round(size / 2**20, 1)}
        for (shape, dtype), size in groups.most_common(top)
    ]


def holders(target: Any, ignore: Any, depth: int = 6, limit: int = 12) -> list[str]:
    """Chains of referrers from ``target`` up to a module's globals, a class or ``depth`` steps: who keeps it
    (``ignore``: the caller's own container of it)."""
    modules = {id(vars(module)): name for name, module in list(sys.modules.items()) if module is not None}
    found: list[str] = []
    frontier = [(target, "model")]
    # the search's own lists and (object, path) pairs refer to what they hold: never followed
    seen = {id(target), id(ignore), id(frontier), id(frontier[0])}
    for _ in range(depth):
        following: list[tuple[Any, str]] = []
        seen.add(id(following))
        for obj, path in frontier:
            for referrer in gc.get_referrers(obj):
                if id(referrer) in seen or isinstance(referrer, types.FrameType):
                    continue
                seen.add(id(referrer))
                label = type(referrer).__name__
                if isinstance(referrer, dict):
                    keys = [str(key) for key, value in referrer.items() if value is obj][:2]
                    label = f"dict[{','.join(keys)}]"
                    if id(referrer) in modules:
                        found.append(f"{path} <- globals of {modules[id(referrer)]}{keys}")
                        continue
                elif isinstance(referrer, type):
                    found.append(f"{path} <- class {referrer.__module__}.{referrer.__qualname__}")
                    continue
                entry = (referrer, f"{path} <- {label}")
                seen.add(id(entry))
                following.append(entry)
        frontier = following[:200]
        seen.add(id(frontier))
        if len(found) >= limit:
            break
    return found[:limit] or [path for _, path in frontier[:limit]]


class LiveTensors(Callback):
    def on_job_end(self, config: Any, job_return: Any, **kwargs: Any) -> None:
        import torch

        gc.collect()
        cuda = torch.cuda.is_available()
        record = {
            "job": job_return.hydra_cfg.hydra.job.get("num"),
            "allocated_gib": round(torch.cuda.memory_allocated() / GIB, 3) if cuda else None,
            "tensors": live_tensors("cuda" if cuda else "cpu"),
        }
        models = [
            obj
            for obj in gc.get_objects()
            if isinstance(obj, torch.nn.Module) and type(obj).__name__.endswith("ForCausalLM")
        ]
        record["models"] = len(models)
        if len(models) > 1:
            try:
                record["held_by"] = [holders(model, ignore=models) for model in models]
            except Exception as error:  # a diagnostic: the allocator's count above still gets printed
                record["held_by"] = [f"not found: {error!r}"]
        print("[live] " + json.dumps(record), flush=True)
