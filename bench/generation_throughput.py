"""Evaluation generation on the GPU machine: transformers' generate (the path before issue 21) vs. the static decoder.

    python bench/generation_throughput.py --model llama3_8b --prompts 64 --batch 32 --max-new-tokens 96

The model is loaded as training leaves it: Unsloth 4-bit with a fresh LoRA adapter (r=16, all seven projections,
its B set to small random values so the adapter is not a no-op), switched to Unsloth's inference mode. The bundled
test pairs are rendered as translator requests in the reasoning-tag format and generated greedily through
``sftlab.evaluation.generation`` by both decoders (random weights: the text is noise, the work is real; rows rarely
end early, and the time per step counts the steps the batch ran).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import build_random_llama, emit_table  # noqa: E402

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


# each row's decoder: transformers' generate, or the static decoder (its step compiled, or captured uncompiled)
DECODERS = {"transformers": False, "static-eager-step": True, "static": True}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="llama3_8b")
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=96)
    parser.add_argument("--work", type=Path, default=Path("/tmp/sftlab-bench"))
    parser.add_argument("--write", type=Path)
    parser.add_argument("--json", type=Path, help="write the measurements here too")
    parser.add_argument("--profile", action="store_true", help="print the step's and the prefill's top GPU kernels")
    parser.add_argument(
        "--decoders", nargs="+", default=list(DECODERS), choices=DECODERS, help="the rows to time (static is needed)"
    )
    args = parser.parse_args()

    import torch
    from unsloth import FastLanguageModel

    from sftlab.config import register_configs, to_schema
    from sftlab.data import records as data
    from sftlab.data.prompts import PromptFormat
    from sftlab.evaluation import generation
    from sftlab.evaluation.translation import translation_request

    register_configs()
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(Path(__file__).resolve().parents[1] / "conf"), version_base="1.3"):
        cfg = to_schema(compose("train"))
    model_dir = build_random_llama(args.model, args.work)
    model, tokenizer = FastLanguageModel.from_pretrained(
        model_name=str(model_dir), max_seq_length=2048, dtype=torch.bfloat16, load_in_4bit=True
    )
    model = FastLanguageModel.get_peft_model(
        model, r=16, lora_alpha=16, lora_dropout=0.0, target_modules=TARGETS, bias="none",
        use_gradient_checkpointing="unsloth", random_state=0,
    )  # fmt: skip
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0.0, 0.01)
    FastLanguageModel.for_inference(model)
    tokenizer.padding_side = "left"
    fmt = PromptFormat(cfg.prompt, tokenizer=tokenizer)
    pairs = data.load_translation_pairs(cfg.eval.test_file)[: args.prompts]
    prompts = [fmt.render_prompt(translation_request(pair, cfg.eval.request)) for pair in pairs]
    lengths = sorted(len(tokenizer(p)["input_ids"]) for p in prompts)

    # the warm-up: the longest prompts, so the static decoder's shapes (and so its compiled step) are the measured ones
    longest_first = sorted(prompts, key=lambda p: -len(tokenizer(p)["input_ids"]))[: args.batch]

    def timed(static: bool) -> tuple[float, list, dict]:
        generation._generate(model, tokenizer, longest_first, args.batch, args.max_new_tokens, 1, static=static)
        with accounted(generation.StaticDecoder) as split:
            seconds, outputs = gpu_seconds(
                lambda: generation._generate(model, tokenizer, prompts, args.batch, args.max_new_tokens, 1, static)
            )
        return seconds, outputs, split

    # The static decoder's set-up (dequantizing the weights, the KV cache, compiling and capturing the step) is part
    # of each call and so of the timings below; timed alone too, so that the per-step figure can be read without it:
    # once cold (the process's first decoder of these shapes: the step's compilation) and once warm (what each later
    # call pays). "static-eager-step" is the decoder with its step captured uncompiled: what compiling adds.
    compile_step = generation.StaticDecoder.compile_step
    longest = max(len(tokenizer(p)["input_ids"]) for p in prompts)

    def build_and_free() -> None:
        generation.StaticDecoder.build(model, args.batch, longest + args.max_new_tokens, args.max_new_tokens)
        torch.cuda.empty_cache()  # the decoder, dropped at once, is freed with it (no cycle holds it)

    def build_seconds() -> float:
        return gpu_seconds(build_and_free)[0]

    results = {}
    for name in args.decoders:
        static = DECODERS[name]
        generation.StaticDecoder.compile_step = compile_step if name == "static" else lambda self: None
        cold = build_seconds() if static else 0.0
        torch.cuda.reset_peak_memory_stats()
        seconds, outputs, split = timed(static)
        warm = build_seconds() if static else 0.0
        batches = -(-len(prompts) // args.batch)
        results[name] = {
            "seconds": seconds,
            "ms_per_step": seconds / (batches * args.max_new_tokens) * 1e3,
            "setup_seconds": warm,
            "cold_setup_seconds": cold,
            "ms_per_step_without_setup": (seconds - warm) / (batches * args.max_new_tokens) * 1e3,
            "new_tokens_per_second": len(prompts) * args.max_new_tokens / seconds,
            "stopped": sum(stopped for _, stopped in outputs),
            "peak_gib": torch.cuda.max_memory_allocated() / 2**30,
            # where the measured call's seconds went: the decoder's build and its batches (GPU drained after each),
            # Python's cycle collector, and the rest (tokenizing, decoding, freeing); the allocator's driver calls
            **split,
            "other_s": seconds - split["build_s"] - split["run_s"] - split["gc_s"],
            "outputs": outputs,
        }
        print(f"[bench] {name}: {json.dumps({k: v for k, v in results[name].items() if k != 'outputs'})}", flush=True)

    phases = batch_phases(generation, model, tokenizer, longest_first, args.max_new_tokens, args.profile)
    print(f"[bench] phases: {json.dumps(phases)}", flush=True)

    def same(a: str, b: str) -> int | str:
        if a not in results or b not in results:
            return "(not run)"
        return sum(x == y for x, y in zip(results[a]["outputs"], results[b]["outputs"], strict=True))

    speedup = results["transformers"]["seconds"] / results["static"]["seconds"] if "transformers" in results else 0.0
    if args.json:
        args.json.write_text(
            json.dumps(
                {"phases": phases, **{k: {n: v for n, v in r.items() if n != "outputs"} for k, r in results.items()}},
                indent=1,
            )
        )
    lines = [
        f"### Evaluation generation, {torch.cuda.get_device_name()} ({time.strftime('%Y-%m-%d')})",
        "",
        f"{args.model} architecture, random weights, Unsloth 4-bit with a LoRA adapter (r=16, all projections) in "
        f"Unsloth's inference mode; {len(prompts)} test prompts ({lengths[0]}-{lengths[-1]} tokens) in the "
        f"reasoning-tag format, greedy, batch {args.batch}, {args.max_new_tokens} new tokens, "
        "`sftlab.evaluation.generation` with each decoder.",
        "",
        "| decoder | seconds | set-up s (cold) | ms per step | ms per step, no set-up | new tokens/s | peak GiB |",
        "|---|---:|---:|---:|---:|---:|---:|",
        *(
            f"| {name} | {r['seconds']:.2f} | {r['setup_seconds']:.2f} ({r['cold_setup_seconds']:.1f}) | "
            f"{r['ms_per_step']:.1f} | "
            f"{r['ms_per_step_without_setup']:.1f} | {r['new_tokens_per_second']:,.0f} | {r['peak_gib']:.1f} |"
            for name, r in results.items()
        ),
        "",
        f"Static decoder / transformers: **{speedup:.1f}x** the tokens/s, set-up included. Identical greedy outputs "
        f"of {len(prompts)} prompts: static and transformers {same('static', 'transformers')}, static and "
        f"static-eager-step {same('static', 'static-eager-step')} (bf16 on the GPU; the CPU test checks equality in "
        "float32).",
        "",
        f"Where one batch of the longest prompts spends its time (static decoder, best of 3): the prefill "
        f"{phases['prefill_s'] * 1e3:.0f} ms, each captured decoding step {phases['step_ms']:.2f} ms.",
        "",
        f"Command: `python bench/generation_throughput.py {' '.join(sys.argv[1:])}`",
        "",
    ]
    emit_table(lines, args.write)


@contextlib.contextmanager
def accounted(decoder_class: Any) -> Iterator[dict]:
    """Seconds spent in ``decoder_class.build`` and ``.run`` (the GPU drained after each; each run's too) and in
    Python's cycle collector while the block runs, and the CUDA memory the caching allocator had to ask the driver
    for (or give back) meanwhile."""
    import torch

    split = {"build_s": 0.0, "run_s": 0.0, "gc_s": 0.0}
    runs: list[float] = []
    build, run = decoder_class.build, decoder_class.run
    before = torch.cuda.memory_stats()

    def timing(key: str, method: Callable) -> Callable:
        def wrapper(*args, **kwargs):
            elapsed, result = gpu_seconds(lambda: method(*args, **kwargs))
            split[key] += elapsed
            if key == "run_s":
                runs.append(round(elapsed, 3))
            return result

        return wrapper

    collecting = []

    def on_gc(phase: str, info: dict) -> None:
        if phase == "start":
            collecting.append(time.perf_counter())
        elif collecting:
            split["gc_s"] += time.perf_counter() - collecting.pop()

    decoder_class.build = classmethod(timing("build_s", build.__func__))
    decoder_class.run = timing("run_s", run)
    gc.callbacks.append(on_gc)
    try:
        yield split
    finally:
        decoder_class.build, decoder_class.run = classmethod(build.__func__), run
        gc.callbacks.remove(on_gc)
        after = torch.cuda.memory_stats()
        split["runs"] = runs
        for key in ("num_device_alloc", "num_device_free", "num_alloc_retries"):
            split[key] = after.get(key, 0) - before.get(key, 0)


def gpu_seconds(work: Callable[[], Any]) -> tuple[float, Any]:
    """Wall seconds of ``work()``, the GPU's queue drained before and after, and what it returned."""
    import torch

    torch.cuda.synchronize()
    started = time.perf_counter()
    result = work()
    torch.cuda.synchronize()
    return time.perf_counter() - started, result


def batch_phases(generation, model, tokenizer, prompts: list[str], max_new_tokens: int, profile: bool) -> dict:
    """One batch on the static decoder, split into its prefill (the prompts in one eager forward) and its
    captured decoding steps, best of 3; with ``profile``, the top GPU kernels of each printed."""
    import torch

    from sftlab.data.prompts import prompt_token_ids

    encoded = [prompt_token_ids(tokenizer, prompt) for prompt in prompts]
    ids, mask = generation.left_padded(encoded, tokenizer.pad_token_id or 0)
    decoder = generation.StaticDecoder.build(model, len(encoded), ids.shape[1] + max_new_tokens, max_new_tokens)

    def seconds(new_tokens: int) -> float:
        return gpu_seconds(lambda: decoder.run(ids, mask, new_tokens, None))[0]

    seconds(2)
    prefill = min(seconds(1) for _ in range(3))
    whole = min(seconds(max_new_tokens) for _ in range(3))
    if profile:
        from torch.profiler import ProfilerActivity
        from torch.profiler import profile as profiler

        for name, work in (("prefill", lambda: decoder.run(ids, mask, 1, None)), ("step", decoder._step)):
            with profiler(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
                for _ in range(3):
                    work()
                torch.cuda.synchronize()
            print(f"[profile] {name}, 3 calls:", flush=True)
            print(prof.key_averages().table(sort_by="self_device_time_total", row_limit=18), flush=True)
    return {"prefill_s": prefill, "step_ms": (whole - prefill) / (max_new_tokens - 1) * 1e3, "rows": len(encoded)}


if __name__ == "__main__":
    main()
