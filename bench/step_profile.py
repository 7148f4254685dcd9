"""Where a training step's time goes: torch.profiler over three steps of sftlab's path or of the raw Unsloth loop.

    python bench/step_profile.py --model tinyllama --mode sftlab --out /tmp/profile.txt
    python bench/step_profile.py --model llama3_8b --mode bundled --out /tmp/profile-bundled.txt

Each mode runs in its own process on the random-weight shape of ``bench/common.py``: ``sftlab`` and ``raw`` at batch
2 x 2048 with gradient checkpointing (both frameworks' defaults; sftlab's autotune off), ``bundled`` sftlab on the
bundled data as ``train_throughput.py``'s ``bundled-autotune`` runs it (batches of 8 similar lengths, autotune on).
The file gets the wall time per step, the GPU's busy time per step (sum of kernel times) and the kernels and CPU
operators that take the most time.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import build_random_llama, long_records, sftlab_overrides  # noqa: E402

WAIT, WARMUP, ACTIVE = 5, 1, 3


def report(prof, step_walls: list[float], out: Path, title: str) -> None:
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
        events.table(sort_by="self_device_time_total", row_limit=25),
        events.table(sort_by="cpu_time_total", row_limit=20),
    ]
    out.write_text("\n".join(text))
    print("\n".join(text[:2]), flush=True)


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
            report(self.prof, self.walls, out, f"sftlab (python -m sftlab.train), {shape}")

    original = training.SftlabTrainer.__init__

    def with_profile(self, *args, callbacks=None, **kwargs):
        original(self, *args, callbacks=[*(callbacks or []), Profile()], **kwargs)

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
