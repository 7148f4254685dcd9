"""Shared by the GPU benchmarks: Llama architectures with random weights on local disk (no Hub access there)."""

from __future__ import annotations

import json
import random
import signal
import string
import subprocess
import sys
import time
from pathlib import Path

ARCHITECTURES = {
    # Meta-Llama-3-8B's shape
    "llama3_8b": dict(
        hidden_size=4096,
        intermediate_size=14336,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=8,
        vocab_size=128256,
        max_position_embeddings=8192,
        rope_theta=500000.0,
    ),
    # TinyLlama-1.1B's shape
    "tinyllama": dict(
        hidden_size=2048,
        intermediate_size=5632,
        num_hidden_layers=22,
        num_attention_heads=32,
        num_key_value_heads=4,
        vocab_size=32000,
        max_position_embeddings=2048,
        rope_theta=10000.0,
    ),
}


def build_random_llama(name: str, root: Path, max_position_embeddings: int | None = None) -> Path:
    """A bf16 Llama of the named shape with random weights and sftlab's byte-level tokenizer, saved once."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from sftlab.models.loading import build_tiny_tokenizer

    shape = dict(ARCHITECTURES[name])
    if max_position_embeddings:
        shape["max_position_embeddings"] = max_position_embeddings
    target = root / f"{name}-random-{shape['max_position_embeddings']}"
    if (target / "config.json").is_file():
        return target
    tokenizer = build_tiny_tokenizer()
    config = LlamaConfig(
        **shape,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
        torch_dtype="bfloat16",
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    started = time.perf_counter()
    with torch.device("cuda"):
        model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    del model
    torch.cuda.empty_cache()
    print(f"[bench] built {target} in {time.perf_counter() - started:.0f} s", flush=True)
    return target


def long_records(path: Path, count: int, characters: int, seed: int = 0) -> Path:
    """Records whose byte-level tokenization is longer than ``characters`` tokens (truncated to max length)."""
    rng = random.Random(seed)
    words = ["".join(rng.choices(string.ascii_lowercase, k=rng.randint(2, 9))) for _ in range(2000)]
    with path.open("w", encoding="utf-8") as handle:
        for index in range(count):
            text = " ".join(rng.choices(words, k=characters // 5))
            record = {
                "instruction": f"Continue the text {index}.",
                "input": "",
                "category": "creative",
                "language": "English",
                "field": "benchmark",
                "keywords": [],
                "flag": "creator",
                "reasoning": "Keep the style before writing more.",
                "transformed_input": "",
                "output": text,
            }
            handle.write(json.dumps(record) + "\n")
    return path


def sftlab_overrides(
    model_dir: str, train_files: str, batch: int, length: int, steps: int, accumulation: int = 1
) -> list[str]:
    """`python -m sftlab.train` overrides for a throughput run: Unsloth 4-bit, no evaluation, no adapter, a log line
    per step (``steady_tokens_per_second`` in metrics.json skips the first 3 steps)."""
    return [
        "backend=unsloth",
        "logger=none",
        "model.source=hub",
        f"model.path={model_dir}",
        f"model.name={Path(model_dir).name}",
        "model.load_in_4bit=true",
        f"data.train_files={train_files}",
        "data.val_files=[]",
        "data.val_fraction=0.02",
        "eval.enabled=false",
        "eval.objective=train_loss",
        "trainer.eval_steps=0",
        "trainer.save_steps=0",
        "trainer.save_adapter=false",
        f"trainer.per_device_train_batch_size={batch}",
        f"trainer.gradient_accumulation_steps={accumulation}",
        f"trainer.max_seq_length={length}",
        f"trainer.max_steps={steps}",
        "trainer.logging_steps=1",
        "trainer.learning_rate=2e-4",
        "trainer.group_by_length=false",
        "hydra.job_logging.root.level=WARNING",
    ]


def run_json(command: list[str], timeout: int = 900) -> dict:
    """Run a measurement in its own process; it prints one JSON line starting with RESULT."""
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    for line in result.stdout.splitlines():
        if line.startswith("RESULT "):
            return {**json.loads(line[7:]), "wall_s": time.perf_counter() - started}
    sys.stderr.write(result.stdout[-4000:] + result.stderr[-6000:])
    if result.returncode < 0:  # no Python error to show: the kernel's OOM killer, say
        error = f"killed by signal {-result.returncode} ({signal.Signals(-result.returncode).name})"
    else:
        lines = [line for line in result.stderr.splitlines() if line.strip() and "it/s]" not in line]  # no tqdm bars
        error = f"exit {result.returncode}: {lines[-1].strip() if lines else 'no output'}"
    return {"error": error, "wall_s": time.perf_counter() - started}


def run_sftlab(overrides: list[str], run_dir: Path, timeout: int) -> tuple[dict, dict | None]:
    """`python -m sftlab.train` with ``overrides`` into ``run_dir``: its run_json result and its metrics.json (None
    when the run wrote none)."""
    result = run_json([sys.executable, "-m", "sftlab.train", *overrides, f"hydra.run.dir={run_dir}"], timeout=timeout)
    metrics_file = run_dir / "metrics.json"
    return result, json.loads(metrics_file.read_text()) if metrics_file.is_file() else None


def bf16_matmul_peak(size: int = 8192, repeats: int = 30) -> float:
    """This GPU's bf16 matrix-product rate in TFLOP/s: the median of ``repeats`` timed size^3 products (random data)."""
    import torch

    a, b = (torch.randn(size, size, device="cuda", dtype=torch.bfloat16) for _ in range(2))
    for _ in range(5):
        a @ b
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        a @ b
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    return 2 * size**3 / sorted(times)[len(times) // 2] / 1e12


def qlora_flops_per_token(name: str, context: float, recompute: bool) -> float:
    """QLoRA's FLOPs per trained token of a frozen base (the LoRA products are left out: under 1%).

    The base's matrix products cost 2N forward and 2N for the input gradients (no weight gradients), 2N more when
    checkpointing recomputes the forward; N counts every linear weight, the LM head included. Attention adds 4 x
    heads x head_dim x (mean context) per layer forward, twice that backward, once more when recomputed; ``context``
    is the mean number of keys a token attends to (half the row for full causal rows).
    """
    shape = ARCHITECTURES[name]
    hidden, layers, heads = shape["hidden_size"], shape["num_hidden_layers"], shape["num_attention_heads"]
    head_dim = hidden // heads
    kv = shape["num_key_value_heads"] * head_dim
    linear = layers * (hidden * (2 * hidden + 2 * kv) + 3 * hidden * shape["intermediate_size"])
    linear += hidden * shape["vocab_size"]
    passes = 3 if recompute else 2
    attention = layers * 4 * heads * head_dim * context
    return 2 * linear * passes + attention * (passes + 1)


def emit_table(lines: list[str], write: Path | None) -> None:
    """Print a result table and append it to a markdown file when asked."""
    text = "\n".join(lines)
    print(text)
    if write:
        with write.open("a", encoding="utf-8") as handle:
            handle.write(text + "\n")
