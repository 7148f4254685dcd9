"""Training throughput on the GPU machine: raw Unsloth loop vs. sftlab's own path vs. transformers+PEFT+bitsandbytes.

    python bench/train_throughput.py --models llama3_8b tinyllama --steps 20 --write docs/benchmarks.md

Builds the Llama-3-8B and TinyLlama architectures with random weights on local disk (the Hub is out of reach there),
then measures each path in a fresh process: QLoRA r=16 on all seven projections, batch 2 x 2048 tokens, gradient
checkpointing, bf16. Tokens/s are counted after 3 warm-up steps; peak memory is torch's max allocated.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import build_random_llama, emit_table, long_records, run_json, run_sftlab, sftlab_overrides  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
WARMUP = 3


def raw_loop(model, steps: int, batch: int, length: int) -> dict:
    """Plain forward/backward/AdamW steps on random tokens: the bar the framework is held to."""
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=2e-4)
    inputs = torch.randint(0, 256, (batch, length), device="cuda")
    model.train()
    torch.cuda.reset_peak_memory_stats()
    for step in range(WARMUP + steps):
        if step == WARMUP:
            torch.cuda.synchronize()
            started = time.perf_counter()
        loss = model(input_ids=inputs, labels=inputs).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    torch.cuda.synchronize()
    elapsed = time.perf_counter() - started
    return {
        "tokens_per_second": steps * batch * length / elapsed,
        "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30,
        "loss": float(loss),
    }


def measure_unsloth(model_dir: str, steps: int, batch: int, length: int) -> dict:
    import torch
    from unsloth import FastLanguageModel

    model, _ = FastLanguageModel.from_pretrained(
        model_name=model_dir, max_seq_length=length, dtype=torch.bfloat16, load_in_4bit=True
    )
    model = FastLanguageModel.get_peft_model(
        model,
        r=16,
        lora_alpha=16,
        lora_dropout=0.0,
        target_modules=TARGETS,
        bias="none",
        use_gradient_checkpointing="unsloth",
        random_state=0,
    )
    return raw_loop(model, steps, batch, length)


def measure_hf(model_dir: str, steps: int, batch: int, length: int) -> dict:
    import torch
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    quantization = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16,
    )
    model = AutoModelForCausalLM.from_pretrained(
        model_dir,
        quantization_config=quantization,
        dtype=torch.bfloat16,
        attn_implementation="sdpa",
        device_map={"": 0},
    )
    model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=True)
    model = get_peft_model(
        model, LoraConfig(r=16, lora_alpha=16, lora_dropout=0.0, target_modules=TARGETS, task_type="CAUSAL_LM")
    )
    return raw_loop(model, steps, batch, length)


BUNDLED = "[data/reasoning/train_en.jsonl,data/reasoning/train_ja.jsonl,data/reasoning/train_zh.jsonl]"
# How the bundled records are batched (trainer.* overrides): random batches padded to their longest record; batches
# of similar lengths (sftlab's default); one padding-free row per batch; rows packed to max_seq_length.
BATCHING = {
    "padded": dict(group_by_length=False, padding_free=False, packing=False),
    "grouped": dict(group_by_length=True, padding_free=False, packing=False),
    "padfree": dict(group_by_length=False, padding_free=True, packing=False),
    "packed": dict(group_by_length=False, padding_free=False, packing=True),
}


def measure_sftlab(
    model_dir: str,
    steps: int,
    batch: int,
    length: int,
    work: Path,
    batching: str | None = None,
) -> dict:
    """`python -m sftlab.train` with the same shapes: SFTTrainer, the data pipeline, Unsloth backend.

    With ``batching`` (a key of ``BATCHING``) it trains on the bundled reasoning data, records of mixed lengths,
    batched that way; tokens/s then count real (non-padding) tokens only.
    """
    run_dir = work / f"sftlab-{Path(model_dir).name}-{batching or 'long'}"
    if batching:
        train_files = BUNDLED
    else:
        train_files = f"[{long_records(work / 'long_records.jsonl', (WARMUP + steps) * batch + 8, length * 2)}]"
    overrides = [
        *sftlab_overrides(model_dir, train_files, batch, length, WARMUP + steps),
        *(f"trainer.{key}={str(value).lower()}" for key, value in BATCHING.get(batching, BATCHING["padded"]).items()),
    ]
    result, metrics = run_sftlab(overrides, run_dir, 900)
    if metrics is None:
        return result
    return {
        "tokens_per_second": metrics["steady_tokens_per_second"],
        "peak_memory_gib": metrics["peak_memory_gib"],
        "loss": metrics["last_train_loss"],
        "truncated": metrics["train_split"]["truncated"],
        "wall_s": result.get("wall_s"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["llama3_8b", "tinyllama"])
    parser.add_argument(
        "--paths", nargs="+", default=["unsloth", "sftlab", "hf", *(f"bundled-{name}" for name in BATCHING)]
    )
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--length", type=int, default=2048)
    parser.add_argument("--work", type=Path, default=Path("/tmp/sftlab-bench"))
    parser.add_argument("--write", type=Path, help="append the table to this markdown file")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.measure:  # child process: one measurement, one JSON line
        measure = {"unsloth": measure_unsloth, "hf": measure_hf}[args.measure]
        print("RESULT " + json.dumps(measure(args.model_dir, args.steps, args.batch, args.length)), flush=True)
        return

    import torch

    args.work.mkdir(parents=True, exist_ok=True)
    device = torch.cuda.get_device_name()
    rows = []
    for name in args.models:
        model_dir = str(build_random_llama(name, args.work))
        results = {}
        for path in args.paths:
            if path == "sftlab":
                results[path] = measure_sftlab(model_dir, args.steps, args.batch, args.length, args.work)
            elif path.startswith("bundled-"):
                batching = path.removeprefix("bundled-")
                results[path] = measure_sftlab(
                    model_dir,
                    args.steps,
                    args.batch if batching == "packed" else args.batch * 4,
                    args.length,
                    args.work,
                    batching=batching,
                )
            else:
                results[path] = run_json(
                    [
                        sys.executable,
                        __file__,
                        "--measure",
                        path,
                        "--model-dir",
                        model_dir,
                        "--steps",
                        str(args.steps),
                        "--batch",
                        str(args.batch),
                        "--length",
                        str(args.length),
                    ]
                )
            print(f"[bench] {time.strftime('%H:%M:%S')} {name} {path}: {json.dumps(results[path])}", flush=True)
        rows.append((name, results))

    lines = [
        f"### Training throughput, {device} ({time.strftime('%Y-%m-%d')})",
        "",
        f"QLoRA r=16 on all seven projections, batch {args.batch} x {args.length} tokens, gradient checkpointing, "
        f"bf16, random weights; {args.steps} steps after {WARMUP} warm-up steps. `sftlab` is `python -m sftlab.train` "
        "(SFTTrainer, data pipeline, Unsloth backend) on records longer than the batch length; `bundled-*` is the same "
        f"on the bundled reasoning data (byte-level tokens, batch {args.batch * 4}, mixed lengths), counting only "
        "non-padding tokens, with and without padding-free batching.",
        "",
        "| model | path | tokens/s | peak GiB | vs raw Unsloth | vs HF+PEFT+bnb |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for name, results in rows:
        raw = results.get("unsloth", {}).get("tokens_per_second")
        hf = results.get("hf", {}).get("tokens_per_second")
        for path, result in results.items():
            tps = result.get("tokens_per_second")
            if tps is None:
                lines.append(f"| {name} | {path} | failed: {result.get('error', '?')} | | | |")
                continue
            ratio_raw = f"{tps / raw:.2f}" if raw else ""
            ratio_hf = f"{tps / hf:.2f}" if hf else ""
            lines.append(
                f"| {name} | {path} | {tps:,.0f} | {result['peak_memory_gib']:.1f} | {ratio_raw} | {ratio_hf} |"
            )
    lines += ["", f"Command: `python bench/train_throughput.py {' '.join(sys.argv[1:])}`", ""]
    emit_table(lines, args.write)


if __name__ == "__main__":
    main()
