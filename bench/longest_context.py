"""Longest sequence that trains through sftlab for Llama-3-8B QLoRA at batch 1 on the GPU machine.

    python bench/longest_context.py --lengths 65536 131072 --steps 1

Each length is one `python -m sftlab.train` run (Unsloth backend, r=16 on all projections, gradient
checkpointing, ``--steps`` optimizer steps) on a random-weight Llama-3-8B whose position table covers the longest
length. A length trains when its steps (forward, backward, optimizer) finish; the table gives the peak memory and the
seconds per step (the first step included: at these lengths a step takes minutes, so there is no warm-up to skip).
The lengths run from short to long and stop at the first that fails.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import build_random_llama, emit_table, long_records, run_sftlab, sftlab_overrides  # noqa: E402


def measure_length(model_dir: str, length: int, steps: int, work: Path) -> dict:
    """One `python -m sftlab.train` run at batch 1 on records longer than ``length`` tokens."""
    run_dir = work / f"context-{length}"
    records = long_records(work / f"long_records_{length}.jsonl", steps + 8, length * 2)
    result, metrics = run_sftlab(sftlab_overrides(model_dir, f"[{records}]", 1, length, steps), run_dir, 3600)
    if metrics is None:
        return result
    return {
        "seconds_per_step": metrics["train_runtime_s"] / metrics["steps"],
        "tokens_per_second": metrics["tokens_per_second"],
        "peak_memory_gib": metrics["peak_memory_gib"],
        "wall_s": result.get("wall_s"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[65536, 131072])
    parser.add_argument("--steps", type=int, default=1)
    parser.add_argument("--positions", type=int, default=262144, help="the random model's position table")
    parser.add_argument("--work", type=Path, default=Path("/tmp/sftlab-bench"))
    parser.add_argument("--write", type=Path)
    args = parser.parse_args()

    import torch

    positions = max(args.positions, *args.lengths)
    model_dir = str(build_random_llama("llama3_8b", args.work, max_position_embeddings=positions))
    rows = []
    for length in args.lengths:
        result = measure_length(model_dir, length, args.steps, args.work)
        rows.append((length, result))
        print(f"[bench] {length}: {result}", flush=True)
        if result.get("tokens_per_second") is None:
            break
    lines = [
        f"### Longest context, Llama-3-8B QLoRA at batch 1, {torch.cuda.get_device_name()} "
        f"({time.strftime('%Y-%m-%d')})",
        "",
        "| tokens per sequence | result | s per step | tokens/s | peak GiB |",
        "|---:|---|---:|---:|---:|",
    ]
    for length, result in rows:
        if result.get("tokens_per_second") is None:
            lines.append(f"| {length:,} | failed: {result.get('error', '?')} | | | |")
        else:
            lines.append(
                f"| {length:,} | trains | {result['seconds_per_step']:.0f} | {result['tokens_per_second']:,.0f} | "
                f"{result['peak_memory_gib']:.1f} |"
            )
    lines += ["", f"Command: `python bench/longest_context.py {' '.join(sys.argv[1:])}`", ""]
    emit_table(lines, args.write)


if __name__ == "__main__":
    main()
