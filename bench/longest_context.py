"""Longest sequence that trains through sftlab for Llama-3-8B QLoRA at batch 1 on the GPU machine.

    python bench/longest_context.py --lengths 8192 16384 32768 65536

Each length is one `python -m sftlab.train` run (Unsloth backend, r=16 on all projections, gradient
checkpointing, 3 steps) on a random-weight Llama-3-8B whose position table covers the longest length.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import build_random_llama, emit_table  # noqa: E402
from train_throughput import measure_sftlab  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[8192, 16384, 32768, 65536])
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--work", type=Path, default=Path("/tmp/sftlab-bench"))
    parser.add_argument("--write", type=Path)
    args = parser.parse_args()

    import torch

    model_dir = str(build_random_llama("llama3_8b", args.work, max_position_embeddings=max(args.lengths)))
    rows = []
    for length in args.lengths:
        result = measure_sftlab(model_dir, args.steps, 1, length, args.work)
        rows.append((length, result))
        print(f"[bench] {length}: {result}", flush=True)
        if result.get("tokens_per_second") is None:
            break
    lines = [
        f"### Longest context, Llama-3-8B QLoRA at batch 1, {torch.cuda.get_device_name()} "
        f"({time.strftime('%Y-%m-%d')})",
        "",
        "| tokens per sequence | result | tokens/s | peak GiB |",
        "|---:|---|---:|---:|",
    ]
    for length, result in rows:
        if result.get("tokens_per_second") is None:
            lines.append(f"| {length:,} | failed: {result.get('error', '?')} | | |")
        else:
            lines.append(
                f"| {length:,} | trains | {result['tokens_per_second']:,.0f} | {result['peak_memory_gib']:.1f} |"
            )
    lines += ["", f"Command: `python bench/longest_context.py {' '.join(sys.argv[1:])}`", ""]
    emit_table(lines, args.write)


if __name__ == "__main__":
    main()
