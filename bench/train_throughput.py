"""Training throughput on the GPU machine: raw Unsloth loop vs. sftlab's own path, default and autotuned.

    python bench/train_throughput.py --models llama3_8b --steps 8 --effective 8 --write docs/benchmarks.md

Builds the Llama-3-8B and TinyLlama architectures with random weights on local disk (the Hub is out of reach there),
then measures each path in a fresh process: QLoRA r=16 on all seven projections, rows of 2048 tokens, bf16, every
path at the same effective batch (``--effective`` rows per optimizer step; micro-batches of ``--batch`` rows
accumulated, or what ``trainer.autotune`` picks). Tokens/s are counted after 3 warm-up optimizer steps; peak memory
is torch's max allocated; MFU is the QLoRA FLOPs per token (``common.qlora_flops_per_token``) times tokens/s over
this GPU's bf16 matrix-product rate, measured at the start of the same invocation.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    bf16_matmul_peak,
    build_random_llama,
    emit_table,
    long_records,
    qlora_flops_per_token,
    run_json,
    run_sftlab,
    sftlab_overrides,
)

ROOT = Path(__file__).resolve().parents[1]
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
WARMUP = 3


def raw_loop(model, steps: int, batch: int, length: int, accumulation: int = 1) -> dict:
    """Plain forward/backward/AdamW steps on random tokens, ``accumulation`` micro-batches a step: the bar the
    framework is held to."""
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
        for _ in range(accumulation):
            loss = model(input_ids=inputs, labels=inputs).loss / accumulation
            loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    torch.cuda.synchronize()
    elapsed = time.perf_counter() - started
    return {
        "tokens_per_second": steps * accumulation * batch * length / elapsed,
        "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30,
        "loss": float(loss) * accumulation,
        "plan": f"{batch} x {accumulation}, checkpointing offload",
        "recompute": True,
    }


def measure_unsloth(model_dir: str, steps: int, batch: int, length: int, accumulation: int = 1) -> dict:
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
    return raw_loop(model, steps, batch, length, accumulation)


def measure_hf(model_dir: str, steps: int, batch: int, length: int, accumulation: int = 1) -> dict:
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
    return raw_loop(model, steps, batch, length, accumulation)


BUNDLED = "[data/reasoning/train_en.jsonl,data/reasoning/train_ja.jsonl,data/reasoning/train_zh.jsonl]"
# How the bundled records are batched (trainer.* overrides): random batches padded to their longest record; batches
# of similar lengths (sftlab's default); one padding-free row per batch; rows packed to max_seq_length.
BATCHING = {
    "padded": dict(group_by_length=False, padding_free=False, packing=False),
    "grouped": dict(group_by_length=True, padding_free=False, packing=False),
    "padfree": dict(group_by_length=False, padding_free=True, packing=False),
    "packed": dict(group_by_length=False, padding_free=False, packing=True),
}


def batching_overrides(batching: str | None) -> list[str]:
    """The trainer.* overrides of a ``BATCHING`` key (None: random padded batches, as on the long records)."""
    return [f"trainer.{key}={str(value).lower()}" for key, value in BATCHING.get(batching, BATCHING["padded"]).items()]


def measure_sftlab(
    model_dir: str,
    steps: int,
    batch: int,
    accumulation: int,
    length: int,
    work: Path,
    batching: str | None = None,
    autotune: bool = False,
    extra: tuple[str, ...] = (),
) -> dict:
    """`python -m sftlab.train` with the same shapes: SFTTrainer, the data pipeline, Unsloth backend.

    With ``batching`` (a key of ``BATCHING``) it trains on the bundled reasoning data, records of mixed lengths,
    batched that way; tokens/s then count real (non-padding) tokens only. ``autotune``: trainer.autotune=true.
    ``extra``: further overrides, last (a path's ``+key=value`` suffixes).
    """
    variant = "".join(f"-{override.replace('=', '-')}" for override in extra)  # '=' would break hydra.run.dir
    run_dir = work / f"sftlab-{Path(model_dir).name}-{batching or 'long'}{'-autotune' if autotune else ''}{variant}"
    if batching:
        train_files = BUNDLED
    else:
        rows = (WARMUP + steps) * batch * accumulation + 8
        train_files = f"[{long_records(work / 'long_records.jsonl', rows, length * 2)}]"
    overrides = [
        *sftlab_overrides(model_dir, train_files, batch, length, WARMUP + steps, accumulation),
        *batching_overrides(batching),
        f"trainer.autotune={str(autotune).lower()}",
        *extra,
    ]
    result, metrics = run_sftlab(overrides, run_dir, 900)
    if metrics is None:
        return result
    plan = metrics.get("memory_plan")
    split = metrics["train_split"]
    return {
        "tokens_per_second": metrics["steady_tokens_per_second"],
        "peak_memory_gib": metrics["peak_memory_gib"],
        "loss": metrics["last_train_loss"],
        "truncated": split["truncated"],
        "mean_row": split["tokens"] / max(split["records"] - split["dropped"], 1),
        "wall_s": result.get("wall_s"),
        "plan": (
            f"{plan['per_device_train_batch_size']} x {plan['gradient_accumulation_steps']}, "
            f"checkpointing {plan['checkpointing']}"
            if plan
            else f"{batch} x {accumulation}, checkpointing offload"
        ),
        "recompute": plan is None or plan["checkpointing"] != "off",
        "memory_plan": plan,
    }


# Sweep variants: the second switches off Unsloth's per-block compile of the decoder layers (on by default on torch
# >= 2.11), once the lead for the memory a sweep's trials find allocated; measured, it changes nothing there
# (docs/benchmarks.md: the first trial's base, held by its task frame).
SWEEPS = {"autotune-sweep": {}, "autotune-sweep-no-block-compile": {"UNSLOTH_BLOCK_COMPILE_LEGACY": "0"}}


def autotune_sweep(model_dir: str, steps: int, effective: int, work: Path, variant: str = "autotune-sweep") -> dict:
    """A 4-trial sweep over lora.r and trainer.max_seq_length with trainer.autotune=true in one process (the base
    model is kept between trials): each trial's plan, peak memory and whether any plan ran out of memory, and
    after each trial what the process still holds (``live_tensors.LiveTensors``)."""
    import os
    import subprocess

    sweep_dir = work / variant
    bench = str(Path(__file__).resolve().parent)
    env = {**os.environ, **SWEEPS[variant], "PYTHONPATH": os.pathsep.join([bench, os.environ.get("PYTHONPATH", "")])}
    records = long_records(work / "long_records.jsonl", (WARMUP + steps) * effective + 8, 4096)
    overrides = [
        o
        for o in sftlab_overrides(model_dir, f"[{records}]", 2, 2048, WARMUP + steps, effective // 2)
        if not o.startswith("trainer.max_seq_length=")
    ]
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "sftlab.train", "-m", *overrides, "trainer.autotune=true",
         "trainer.max_seq_length=1024,2048", "lora.r=16,64", f"hydra.sweep.dir={sweep_dir}",
         "+hydra.callbacks.live_tensors._target_=live_tensors.LiveTensors"],
        capture_output=True, text=True, timeout=900, env=env,
    )  # fmt: skip
    live = {}
    for line in result.stdout.splitlines():
        if "[live] " in line:  # after a progress bar's carriage return, on the same line
            record = json.loads(line.partition("[live] ")[2])
            live[str(record["job"])] = record
    trials = []
    for job in sorted(sweep_dir.glob("[0-9]*"), key=lambda path: int(path.name)):
        metrics_file = job / "metrics.json"
        overrides_file = job / ".hydra" / "overrides.yaml"
        metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else None
        trials.append(
            {
                "job": job.name,
                "overrides": [line[2:] for line in overrides_file.read_text().splitlines() if "=" in line][-2:]
                if overrides_file.is_file()
                else [],
                "ok": metrics is not None,
                "plan": metrics and metrics.get("memory_plan"),
                "peak_memory_gib": metrics and metrics["peak_memory_gib"],
                "tokens_per_second": metrics and metrics["steady_tokens_per_second"],
                "left_after": live.get(job.name),
            }
        )
    if result.returncode:
        sys.stderr.write(result.stdout[-3000:] + result.stderr[-5000:])
    else:  # Hydra turns a callback's exception into a warning: the diagnostic's own failure must not pass silently
        sys.stderr.writelines(line + "\n" for line in result.stderr.splitlines() if "Callback " in line)
    return {"exit": result.returncode, "wall_s": time.perf_counter() - started, "trials": trials}


PATHS = ["unsloth", "sftlab", "sftlab-autotune", "bundled-grouped", "bundled-autotune"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["llama3_8b", "tinyllama"])
    parser.add_argument(
        "--paths",
        nargs="+",
        default=PATHS,
        help=f"of {PATHS}, hf, bundled-<{'|'.join(BATCHING)}>, {', '.join(SWEEPS)}; an sftlab path may end in "
        "+key=value overrides (bundled-autotune+trainer.optim=adamw_torch_fused)",
    )
    parser.add_argument("--steps", type=int, default=8, help="optimizer steps measured (after 3 warm-up steps)")
    parser.add_argument("--batch", type=int, default=2, help="rows per micro-batch of the default paths")
    parser.add_argument("--effective", type=int, default=8, help="rows per optimizer step, every path")
    parser.add_argument("--length", type=int, default=2048)
    parser.add_argument("--work", type=Path, default=Path("/tmp/sftlab-bench"))
    parser.add_argument("--write", type=Path, help="append the table to this markdown file")
    parser.add_argument("--json", type=Path, help="write every measurement here too")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    accumulation = args.effective // args.batch
    for path in args.paths:
        if "+" in path and not path.startswith(("sftlab", "bundled-")):
            parser.error(f"{path}: only sftlab paths take +key=value overrides")

    if args.measure:  # child process: one measurement, one JSON line
        measure = {"unsloth": measure_unsloth, "hf": measure_hf}[args.measure]
        result = measure(args.model_dir, args.steps, args.batch, args.length, accumulation)
        print("RESULT " + json.dumps(result), flush=True)
        return

    import torch

    args.work.mkdir(parents=True, exist_ok=True)
    device = torch.cuda.get_device_name()
    peak = bf16_matmul_peak()
    print(f"[bench] bf16 matmul peak {peak:.0f} TFLOP/s", flush=True)
    rows, sweeps = [], {}

    def save(results: dict) -> None:
        """The measurements so far, after every path: a run stopped at a time limit keeps what it measured."""
        if args.json:
            done = [*rows, (name, results)]
            args.json.write_text(json.dumps({"peak_tflops": peak, "rows": done, "sweeps": sweeps}, indent=1))

    for name in args.models:
        model_dir = str(build_random_llama(name, args.work))
        results = {}
        for path in args.paths:
            base, *extra = path.split("+")
            if path in SWEEPS:
                sweeps[f"{name} {path}"] = autotune_sweep(model_dir, args.steps, args.effective, args.work, path)
                print(
                    f"[bench] {time.strftime('%H:%M:%S')} {name} {path}: {json.dumps(sweeps[f'{name} {path}'])}",
                    flush=True,
                )
                save(results)
                continue
            if base in ("sftlab", "sftlab-autotune"):
                results[path] = measure_sftlab(
                    model_dir, args.steps, args.batch, accumulation, args.length, args.work,
                    autotune=base.endswith("autotune"), extra=tuple(extra),
                )  # fmt: skip
            elif base.startswith("bundled-"):
                batching = base.removeprefix("bundled-")
                results[path] = measure_sftlab(
                    model_dir,
                    args.steps,
                    args.effective,
                    1,
                    args.length,
                    args.work,
                    batching="grouped" if batching == "autotune" else batching,
                    autotune=batching == "autotune",
                    extra=tuple(extra),
                )
            else:
                results[path] = run_json(
                    [sys.executable, __file__, "--measure", path, "--model-dir", model_dir, "--steps",
                     str(args.steps), "--batch", str(args.batch), "--effective", str(args.effective), "--length",
                     str(args.length)]
                )  # fmt: skip
            result = results[path]
            if result.get("tokens_per_second"):
                context = (result.get("mean_row") or args.length) / 2
                flops = qlora_flops_per_token(name, context, result.get("recompute", True))
                result["mfu"] = result["tokens_per_second"] * flops / (peak * 1e12)
            print(f"[bench] {time.strftime('%H:%M:%S')} {name} {path}: {json.dumps(result)}", flush=True)
            save(results)
        rows.append((name, results))

    lines = [
        f"### Training throughput, {device} ({time.strftime('%Y-%m-%d')})",
        "",
        f"QLoRA r=16 on all seven projections, rows of {args.length} tokens, bf16, random weights, effective batch "
        f"{args.effective} rows per optimizer step on every path; {args.steps} steps after {WARMUP} warm-up steps. "
        f"`unsloth`: the raw loop at Unsloth's defaults ({args.batch} x {args.length}, offloaded checkpointing, "
        f"{accumulation} micro-batches accumulated); `sftlab`: `python -m sftlab.train` at the same defaults; "
        "`*-autotune`: `trainer.autotune=true`; `bundled-*`: the bundled reasoning data (byte-level tokens, mixed "
        "lengths, batches of similar lengths), counting non-padding tokens. MFU: QLoRA FLOPs per token (forward 2N, "
        "input gradients 2N, recomputation 2N, attention) x tokens/s over the bf16 matrix-product rate measured in "
        f"this invocation, **{peak:.0f} TFLOP/s** (8192^3, median of 30).",
        "",
        "| model | path | plan (batch x accumulation, checkpointing) | tokens/s | MFU | peak GiB | vs raw Unsloth |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for name, results in rows:
        raw = results.get("unsloth", {}).get("tokens_per_second")
        for path, result in results.items():
            tps = result.get("tokens_per_second")
            if tps is None:
                lines.append(f"| {name} | {path} | failed: {result.get('error', '?')} | | | | |")
                continue
            ratio = f"{tps / raw:.2f}" if raw else ""
            lines.append(
                f"| {name} | {path} | {result.get('plan', '')} | {tps:,.0f} | {result.get('mfu', 0):.2f} | "
                f"{result['peak_memory_gib']:.1f} | {ratio} |"
            )
    for name, sweep in sweeps.items():
        lines += ["", f"Autotuned sweep, {name} (exit {sweep['exit']}, {sweep['wall_s']:.0f} s):", ""]
        lines += [
            "| job | overrides | plan | static GiB | peak GiB | tokens/s | plans out of memory | GiB left after |",
            "|---|---|---|---:|---:|---:|---:|---:|",
        ]
        for trial in sweep["trials"]:
            plan = trial["plan"] or {}
            left = (trial["left_after"] or {}).get("allocated_gib")
            lines.append(
                f"| {trial['job']} | {' '.join(trial['overrides'])} | "
                f"{plan.get('per_device_train_batch_size')} x {plan.get('gradient_accumulation_steps')}, "
                f"{plan.get('checkpointing')} | {plan.get('static_gib', 0):.2f} | "
                f"{trial['peak_memory_gib'] or 0:.1f} | "
                f"{trial['tokens_per_second'] or 0:,.0f} | {len(plan.get('failed', []))} | "
                f"{'' if left is None else f'{left:.2f}'} |"
            )
    lines += ["", f"Command: `python bench/train_throughput.py {' '.join(sys.argv[1:])}`", ""]
    emit_table(lines, args.write)


if __name__ == "__main__":
    main()
