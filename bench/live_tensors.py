"""A Hydra callback for the benchmarks: after each job of a multirun, what the process still holds.

    python -m sftlab.train -m ... +hydra.callbacks.live_tensors._target_=live_tensors.LiveTensors

(with ``bench/`` on ``PYTHONPATH``). After each job, once Python's cycle collector has run, it prints one line:
``[live] {"job": ..., "allocated_gib": ..., "tensors": [...]}``, the allocator's count and the largest groups of
live tensors on the accelerator (or the CPU without one) by shape and dtype. A sweep's trials keep the base model
loaded, so what grows from one job to the next is what a trial left behind (docs/benchmarks.md, issue 21).
With ``LIVE_TENSORS_RESET_COMPILER=1`` it then runs ``torch.compiler.reset()`` (Dynamo's caches, and the code and
memory they hold) and reports ``allocated_after_reset_gib``: the test of whether compiled code holds what is left.
"""

from __future__ import annotations

import gc
import json
import os
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
        except (RuntimeError, ReferenceError):  # tensors without storage (functional wrappers), dead proxies
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
        if os.environ.get("LIVE_TENSORS_RESET_COMPILER") == "1":
            torch.compiler.reset()
            gc.collect()
            if cuda:
                torch.cuda.empty_cache()
                record["allocated_after_reset_gib"] = round(torch.cuda.memory_allocated() / GIB, 3)
        print("[live] " + json.dumps(record), flush=True)
