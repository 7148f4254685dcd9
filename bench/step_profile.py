"""Where a training step's time goes: torch.profiler over three steps of sftlab's path or of the raw Unsloth loop.

    python bench/step_profile.py --model tinyllama --mode sftlab --out /tmp/profile.txt
    python bench/step_profile.py --model llama3_8b --mode bundled --out /tmp/profile-bundled.txt

Each mode runs in its own process on the random-weight shape of ``bench/common.py``: ``sftlab`` and ``raw`` at batch
2 x 2048 with gradient checkpointing (both frameworks' defaults; sftlab's autotune off), ``bundled`` sftlab on the
bundled data as ``train_throughput.py``'s ``bundled-autotune`` runs it (batches of 8 similar lengths, autotune on).
The file gets the wall time per step, the GPU's busy time per step (sum of kernel times), for the sftlab modes the
GPU's idle time by the Trainer phase the CPU was in, and the kernels and CPU operators that take the most time.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import build_random_llama, long_records, sftlab_overrides  # noqa: E402

WAIT, WARMUP, ACTIVE = 5, 1, 3


# The Trainer's phases of a step, each wrapped in a profiler range (``phase_ranges``), so that the report can say
# what the CPU was doing while the GPU had nothing to run. The optimizer's step carries torch's own range.
PHASES = {
    "trainer": (
        "get_batch_samples",
        "training_step",
        "compute_loss",
        "_track_num_input_tokens",
        "_clip_grad_norm",
        "_maybe_log_save_evaluate",
    ),
    "callback_handler": ("on_step_begin", "on_step_end"),
    "accelerator": ("backward",),
}


def phase_ranges(trainer) -> None:
    """Wrap the methods of ``PHASES`` in ``record_function`` ranges named ``phase:Class.method``, on the classes
    the trainer, its callback handler and its accelerator have now (Unsloth patches some of them at load time)."""
    import functools

    from torch.profiler import record_function

    for attribute, methods in PHASES.items():
        owner = trainer if attribute == "trainer" else getattr(trainer, attribute)
        cls = type(owner)
        for name in methods:
            method = getattr(cls, name)
            if getattr(method, "_phase_range", False):
                continue

            @functools.wraps(method)
            def ranged(*args, __method=method, __name=f"phase:{cls.__name__}.{name}", **kwargs):
                with record_function(__name):
                    return __method(*args, **kwargs)

            ranged._phase_range = True
            setattr(cls, name, ranged)


def idle_by_phase(prof) -> list[str]:
    """GPU idle time per step during each phase range (and the optimizer's), from the profiler's event times.

    The GPU is idle where no kernel, copy or set runs; a range's share is its CPU span's overlap with those gaps.
    Ranges nest (training_step holds compute_loss and backward), so the rows do not add up.
    """
    from torch.autograd import DeviceType

    events = prof.events()
    device = sorted(
        (e.time_range.start, e.time_range.end)
        for e in events
        if e.device_type == DeviceType.CUDA and not e.is_user_annotation
    )
    steps = [e for e in events if e.name.startswith("ProfilerStep")]
    window = (min(e.time_range.start for e in steps), max(e.time_range.end for e in steps))
    idle, cursor = [], window[0]
    for start, end in device:
        if start > cursor:
            idle.append((cursor, min(start, window[1])))
        cursor = max(cursor, end)
    if cursor < window[1]:
        idle.append((cursor, window[1]))

    def idle_within(start: float, end: float) -> float:
        return sum(max(0.0, min(end, b) - max(start, a)) for a, b in idle)

    rows: dict[str, list[float]] = {}
    for e in events:
        if e.name.startswith(("phase:", "Optimizer.")) and e.device_type == DeviceType.CPU:
            span = rows.setdefault(e.name, [0.0, 0.0, 0])
            span[0] += e.time_range.end - e.time_range.start
            span[1] += idle_within(e.time_range.start, e.time_range.end)
            span[2] += 1
    total_idle = sum(b - a for a, b in idle) / ACTIVE / 1e3
    lines = [f"GPU idle per step {total_idle:.1f} ms; by the CPU range it falls in (ms per step):",
             "| range | calls per step | CPU span | GPU idle during it |", "|---|---:|---:|---:|"]  # fmt: skip
    for name, (span, gap, calls) in sorted(rows.items(), key=lambda item: -item[1][1]):
        lines.append(f"| {name} | {calls / ACTIVE:.0f} | {span / ACTIVE / 1e3:.1f} | {gap / ACTIVE / 1e3:.1f} |")
    return lines


def report(prof, step_walls: list[float], out: Path, title: str, phases: bool = False) -> None:
    """The profile's summary into ``out``; ``phases``: with the GPU's idle time by Trainer phase."""
    from torch.autograd import DeviceType

    events = prof.key_averages()
    # the kernels alone, as the profiler's own table totals them: ranges (ProfilerStep*, compiled regions, custom
    # ops) carry device time too, the span of the kernels they cover, which would count those kernels again
    kernels = [e for e in events if e.device_type == DeviceType.CUDA and not e.is_user_annotation]
    busy = sum(event.self_device_time_total for event in kernels) / ACTIVE / 1e3
    wall = sum(step_walls[WAIT + WARMUP : WAIT + WARMUP + ACTIVE]) / ACTIVE * 1e3  # the profiled steps
    text = [
        f"# {title}",
        f"wall per step {wall:.1f} ms, GPU kernels per step {busy:.1f} ms (busy {busy / wall:.0%})",
        *(idle_by_phase(prof) if phases else []),
        events.table(sort_by="self_device_time_total", row_limit=25),
        events.table(sort_by="cpu_time_total", row_limit=20),
    ]
    out.write_text("\n".join(text))
    print("\n".join(text[:-2]), flush=True)


def profiler():
    from torch.profiler import ProfilerActivity, profile, schedule

    return profile(
        activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA],
        schedule=schedule(wait=WAIT, warmup=WARMUP, active=ACTIVE, repeat=1),
    )


def profile_raw(model_dir: str, out: Path) -> None:
    import torch
    from unsloth import FastLanguageModel

    from train_throughput import TARGETS

    model, _ = FastLanguageModel.from_pretrained(
        model_name=model_dir, max_seq_length=2048, dtype=torch.bfloat16, load_in_4bit=True
    )
    model = FastLanguageModel.get_peft_model(
        model, r=16, lora_alpha=16, lora_dropout=0.0, target_modules=TARGETS, bias="none",
        use_gradient_checkpointing="unsloth", random_state=0,
    )  # fmt: skip
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-4)
    inputs = torch.randint(0, 256, (2, 2048), device="cuda")
    model.train()
    walls = []
    with profiler() as prof:
        for _ in range(WAIT + WARMUP + ACTIVE):
            started = time.perf_counter()
            model(input_ids=inputs, labels=inputs).loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            torch.cuda.synchronize()
            walls.append(time.perf_counter() - started)
            prof.step()
    report(prof, walls, out, "raw Unsloth loop, 2 x 2048")


def profile_sftlab(model_dir: str, work: Path, out: Path, bundled: bool) -> None:
    """``python -m sftlab.train`` in this process, with a callback that runs the profiler over steps 6-8."""
    import unsloth  # noqa: F401  (before TRL, as sftlab's backend does)
    from transformers import TrainerCallback

    from sftlab.training import trainer as training
    from train_throughput import BUNDLED, batching_overrides

    class Profile(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            self.prof, self.walls, self.last = profiler(), [], time.perf_counter()
            self.prof.__enter__()

        def on_step_end(self, args, state, control, **kwargs):
            import torch

            torch.cuda.synchronize()
            now = time.perf_counter()
            self.walls.append(now - self.last)
            self.last = now
            self.prof.step()

        def on_train_end(self, args, state, control, **kwargs):
            self.prof.__exit__(None, None, None)
            report(self.prof, self.walls, out, f"sftlab (python -m sftlab.train), {shape}", phases=True)

    original = training.SftlabTrainer.__init__

    def with_profile(self, *args, callbacks=None, **kwargs):
        original(self, *args, callbacks=[*(callbacks or []), Profile()], **kwargs)
        phase_ranges(self)

    training.SftlabTrainer.__init__ = with_profile
    steps = WAIT + WARMUP + ACTIVE + 1
    if bundled:
        shape = "the bundled data, batches of 8 similar lengths, trainer.autotune"
        overrides = [*sftlab_overrides(model_dir, BUNDLED, 8, 2048, steps), *batching_overrides("grouped")]
    else:
        shape = "2 x 2048, trainer.autotune=false"
        records = long_records(work / "long_records.jsonl", 64, 4096)
        overrides = [*sftlab_overrides(model_dir, f"[{records}]", 2, 2048, steps), "trainer.autotune=false"]
    from sftlab.cli import main

    main(["train", *overrides, f"hydra.run.dir={work / 'profile-run'}"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tinyllama")
    parser.add_argument("--mode", choices=["sftlab", "raw", "bundled"], default="sftlab")
    parser.add_argument("--work", type=Path, default=Path("/tmp/sftlab-bench"))
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    model_dir = str(build_random_llama(args.model, args.work))
    if args.mode == "raw":
        profile_raw(model_dir, args.out)
    else:
        profile_sftlab(model_dir, args.work, args.out, bundled=args.mode == "bundled")


if __name__ == "__main__":
    main()
