"""Batched vs. one-by-one greedy generation through sftlab's evaluation code, on the GPU machine.

    python bench/generation_throughput.py --model tinyllama --prompts 32 --max-new-tokens 64

The test pairs are rendered as translator requests in the reasoning-tag format and generated with
``sftlab.evaluation.generate`` at batch 32 and at batch 1 (random weights: the text is noise, the work is real).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import build_random_llama, emit_table  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tinyllama")
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--work", type=Path, default=Path("/tmp/sftlab-bench"))
    parser.add_argument("--write", type=Path)
    args = parser.parse_args()

    import torch
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from sftlab.config import register_configs
    from sftlab.data import records as data
    from sftlab.data.prompts import PromptFormat
    from sftlab.evaluation import translation as evaluation

    register_configs()
    with initialize_config_dir(config_dir=str(Path(__file__).resolve().parents[1] / "conf"), version_base="1.3"):
        cfg = compose("train")
    model_dir = build_random_llama(args.model, args.work)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16, device_map={"": 0})
    fmt = PromptFormat(OmegaConf.to_container(cfg.prompt, resolve=True), tokenizer=tokenizer)
    pairs = data.load_translation_pairs(cfg.eval.test_file)[: args.prompts]
    prompts = [fmt.render_prompt(evaluation.translation_request(p, cfg.eval.request)) for p in pairs]
    evaluation.generate(model, tokenizer, prompts[:4], 4, 8)  # warm-up

    results = {}
    for batch_size in (args.prompts, 1):
        torch.cuda.synchronize()
        started = time.perf_counter()
        outputs = evaluation.generate(model, tokenizer, prompts, batch_size, args.max_new_tokens)
        torch.cuda.synchronize()
        elapsed = time.perf_counter() - started
        # Random weights rarely emit the end token: count full-length generations only (a lower bound).
        stopped = sum(done for _, done in outputs)
        tokens = (len(outputs) - stopped) * args.max_new_tokens
        results[batch_size] = (elapsed, tokens)
        print(f"[bench] batch {batch_size}: {elapsed:.2f} s, {tokens} tokens, {stopped} stopped early", flush=True)
    speedup = results[1][0] / results[args.prompts][0]
    lines = [
        f"### Batched generation, {torch.cuda.get_device_name()} ({time.strftime('%Y-%m-%d')})",
        "",
        f"{args.model} architecture, random bf16 weights, {args.prompts} test prompts in the reasoning-tag format, "
        f"greedy, up to {args.max_new_tokens} new tokens, `sftlab.evaluation.generate`.",
        "",
        "| batch size | seconds | generated tokens (full-length rows) | tokens/s |",
        "|---:|---:|---:|---:|",
        *(f"| {b} | {t:.2f} | {n} | {n / t:,.0f} |" for b, (t, n) in results.items()),
        "",
        f"Speed-up of batch {args.prompts} over one by one: **{speedup:.1f}x** (wall time for the same prompts).",
        "",
        f"Command: `python bench/generation_throughput.py {' '.join(sys.argv[1:])}`",
        "",
    ]
    emit_table(lines, args.write)


if __name__ == "__main__":
    main()
