"""A Hydra callback for the benchmarks: after each job of a multirun, what the process still holds.

    python -m sftlab.train -m ... +hydra.callbacks.live_tensors._target_=live_tensors.LiveTensors

(with ``bench/`` on ``PYTHONPATH``). After each job, once Python's cycle collector has run, it prints one line:
``[live] {"job": ..., "allocated_gib": ..., "tensors": [...]}``, the allocator's count and the largest groups of
live tensors on the accelerator (or the CPU without one) by shape and dtype. A sweep's trials keep the base model
loaded, so what grows from one job to the next is what a trial left behind, or another base model (docs/benchmarks.md,
issue 21).
When more than one model (``*ForCausalLM``, PEFT's wrapper included) is alive, ``held_by`` says what holds each: its
chains of referrers, through finished frames kept alive, up to a module's globals, a class, a local of a running
function (on any thread), or an object nothing tracked refers to. It found the first trial's task frame, kept by
Unsloth's import, holding a sweep's replaced base (docs/benchmarks.md, issue 21).
"""

from __future__ import annotations

import gc
import json
import sys
import types
import warnings
from collections import Counter
from typing import Any

from hydra.experimental.callback import Callback

GIB = 2**30


def live_objects(kind: type) -> list[Any]:
    """The objects the cycle collector tracks that are instances of ``kind``. ``isinstance`` itself raises on some
    (a dead ``weakref.proxy``: ReferenceError), which skipped this callback's whole record under Unsloth."""
    found = []
    with warnings.catch_warnings():  # and deprecated attributes warn when touched
        warnings.simplefilter("ignore")
        for obj in gc.get_objects():
            try:
                if isinstance(obj, kind):
                    found.append(obj)
            except Exception:
                continue
    return found


def live_tensors(device_type: str, top: int = 8) -> list[dict[str, Any]]:
    """The ``top`` largest groups of live tensors on ``device_type``, each storage counted once."""
    import torch

    seen: set[int] = set()
    groups: Counter[tuple[str, str]] = Counter()
    counts: Counter[tuple[str, str]] = Counter()
    for obj in live_objects(torch.Tensor):
        try:
            if obj.device.type != device_type or obj.is_meta:
                continue
            storage = obj.untyped_storage()
            pointer, size = storage.data_ptr(), storage.nbytes()
        except Exception:  # tensors without readable storage (functional wrappers, a compiler's fake tensors)
            continue
        if pointer in seen or size == 0:
            continue
        seen.add(pointer)
        key = (str(tuple(obj.shape)), str(obj.dtype).removeprefix("torch."))
        groups[key] += size
        counts[key] += 1
    return [
        {"shape": shape, "dtype": dtype, "count": counts[shape, dtype], "mib": round(size / 2**20, 1)}
        for (shape, dtype), size in groups.most_common(top)
    ]


def holders(target: Any, ignore: Any, depth: int = 16, limit: int = 12) -> list[str]:
    """Chains of referrers from ``target``, through finished frames kept alive, up to a module's globals, a class, a
    local of a running function or ``depth`` steps: who keeps it (``ignore``: the caller's own container of it). A
    chain that ends at an object nothing tracked refers to says so: what holds it is outside Python's tracked objects
    (C, e.g. a compiled code object's cache)."""
    modules = {id(vars(module)): name for name, module in list(sys.modules.items()) if module is not None}
    # A running function's locals are no tracked object's referents (the collector treats them as roots): they are
    # looked up in every thread's stack, past this file's own frames.
    own_frames, running, snapshots = set(), {}, []
    for thread, frame in sys._current_frames().items():
        while frame is not None:
            if frame.f_code.co_filename == __file__:
                own_frames.add(id(frame))
            else:
                where = f"{frame.f_code.co_qualname} ({frame.f_code.co_filename}:{frame.f_lineno}, thread {thread})"
                snapshots.append(frame.f_locals)
                for name, value in snapshots[-1].items():
                    running.setdefault(id(value), []).append(f"local {name} of running {where}")
            frame = frame.f_back
    found: list[str] = []
    frontier = [(target, "model")]
    # the search's own lists and (object, path) pairs refer to what they hold: never followed
    searching = {id(ignore), id(frontier), id(frontier[0]), *own_frames, *map(id, snapshots)}
    seen = {id(target)}
    for _ in range(depth):
        following: list[tuple[Any, str]] = []
        searching.add(id(following))
        for obj, path in frontier:
            found.extend(f"{path} <- {local}" for local in running.get(id(obj), []))
            every = [referrer for referrer in gc.get_referrers(obj) if id(referrer) not in searching]
            searching.add(id(every))
            if not every and id(obj) not in running:
                found.append(f"{path} <- nothing tracked (held from C)")
            for referrer in every:
                if id(referrer) in seen:  # on another chain already
                    continue
                seen.add(id(referrer))
                label = type(referrer).__name__
                if isinstance(referrer, types.FrameType):  # a finished frame kept alive: followed to its keeper
                    code = referrer.f_code
                    label = f"frame of {code.co_qualname} ({code.co_filename}:{referrer.f_lineno})"
                elif isinstance(referrer, dict):
                    keys = [str(key) for key, value in referrer.items() if value is obj][:2]
                    label = f"dict[{','.join(keys)}]"
                    if id(referrer) in modules:
                        found.append(f"{path} <- globals of {modules[id(referrer)]}{keys}")
                        continue
                elif isinstance(referrer, list):
                    kinds = Counter(type(item).__name__ for item in referrer[:1000])
                    label = f"list of {len(referrer)} {dict(kinds.most_common(3))}"
                elif isinstance(referrer, type):
                    found.append(f"{path} <- class {referrer.__module__}.{referrer.__qualname__}")
                    continue
                entry = (referrer, f"{path} <- {label}")
                searching.add(id(entry))
                following.append(entry)
        # frames, tracebacks and exceptions first: the chains a kept frame hangs on are what the cut must not lose
        following.sort(key=lambda entry: not isinstance(entry[0], (types.FrameType, types.TracebackType, Exception)))
        frontier = following[:200]
        searching.add(id(frontier))
        if len(set(found)) >= limit:
            break
    counted = Counter(found)  # many bound methods end alike
    return [f"{path} (x{n})" if n > 1 else path for path, n in counted.most_common(limit)] or [
        path for _, path in frontier[:limit]
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
        models = [obj for obj in live_objects(torch.nn.Module) if type(obj).__name__.endswith("ForCausalLM")]
        record["models"] = len(models)
        if len(models) > 1:
            try:
                record["held_by"] = [holders(model, ignore=models) for model in models]
            except Exception as error:  # a diagnostic: the allocator's count above still gets printed
                record["held_by"] = [f"not found: {error!r}"]
        print("[live] " + json.dumps(record), flush=True)
