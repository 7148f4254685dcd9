"""``trainer.autotune``: the gradient checkpointing, per-device batch and accumulation that train fastest on this GPU.

The user's effective batch (per-device batch x accumulation x world size) is kept, so the optimisation is the same
experiment: the length-grouped sampler draws batches of per-device batch x accumulation (the same order for every
plan), and the loss is normalised by the tokens of the whole accumulated batch. Only memory and speed change.

The plan comes from a memory model, not from probes (a probe per candidate would cost every sweep trial seconds):
peak GiB = static (the loaded base, measured, plus the adapter's weights, gradients and Adam states) + tokens of a
micro-batch x GiB per token, the latter from the model's shape and the checkpointing mode. Its coefficients were
fitted to the H200 table of issue 21 (Llama-3-8B QLoRA r=16, rows of 2048); each finished run records its measured
peak in a cache file per (model, GPU, length, rank, targets) under ``cfg.cache_dir``, and later runs with that key
plan from the measurement. An out-of-memory error raises the failed mode's coefficient so that the plan, and every
plan as large, no longer fit, and the next fastest plan that still fits is tried.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sftlab import rundir

GIB = 2**30
MODES = ("off", "on", "offload")  # no checkpointing; recomputed layers, inputs kept on GPU; inputs offloaded to host
# Relative time per token: recomputing the forward adds ~2N to 4N FLOPs (the H200 table: 1.44x at equal batch with
# Unsloth's offloaded checkpointing); the overhead of a micro-step, in tokens of a step without checkpointing,
# fitted to the same table (batch 2 vs 8: 0.11 s at 60 us a token).
MODE_COST = {"off": 1.0, "on": 1.40, "offload": 1.44}
STEP_OVERHEAD_TOKENS = 1500
# GPU memory beside the allocations we count: the allocator's fragmentation, cuBLAS and Triton workspaces.
HEADROOM_FRACTION = 0.08
HEADROOM_MIN_GIB = 1.0
WORKSPACE_GIB = 1.0
ADAPTER_BYTES_PER_PARAMETER = 16  # fp32 weight, gradient and two Adam moments


@dataclass(frozen=True)
class ModelShape:
    """What activation memory depends on: the decoder's widths, its depth and the vocabulary."""

    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    vocab_size: int

    @classmethod
    def of(cls, config: Any) -> ModelShape | None:
        values = [getattr(config, name, None) for name in ("hidden_size", "intermediate_size", "num_hidden_layers")]
        vocab = getattr(config, "vocab_size", None)
        if None in values or vocab is None:
            return None
        return cls(*values, vocab_size=vocab)

    def prior_bytes_per_token(self, mode: str) -> float:
        """GPU bytes per token of a micro-batch (bf16 activations).

        One decoder layer keeps about 2 x (4 hidden + 3 intermediate) bytes per token for its backward (matches
        the 8B measurement within 2%); the bf16 logits (2 x vocabulary) are always there; checkpointing keeps one
        layer's worth (being recomputed) plus, on the GPU, each layer's input.
        """
        layer = 2 * (4 * self.hidden_size + 3 * self.intermediate_size)
        logits = 2 * self.vocab_size
        if mode == "off":
            return logits + self.num_hidden_layers * layer
        kept = self.num_hidden_layers * 2 * self.hidden_size if mode == "on" else 0
        return logits + layer + kept


@dataclass(frozen=True)
class Plan:
    checkpointing: str  # one of MODES
    per_device_train_batch_size: int
    gradient_accumulation_steps: int
    predicted_peak_gib: float
    relative_speed: float  # the speed model's tokens/s, 1.0 = no checkpointing with no per-step overhead

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def describe(self) -> str:
        return (
            f"batch {self.per_device_train_batch_size} x accumulation {self.gradient_accumulation_steps}, "
            f"checkpointing {self.checkpointing} (predicted peak {self.predicted_peak_gib:.1f} GiB)"
        )


def relative_speed(mode: str, batch: int, length: int) -> float:
    return 1.0 / (MODE_COST[mode] + STEP_OVERHEAD_TOKENS / (batch * length))


@dataclass
class MemoryModel:
    """Peak GiB of a training step = static + micro-batch tokens x GiB per token of the checkpointing mode."""

    static_gib: float
    per_token_gib: dict[str, float]

    def peak_gib(self, mode: str, batch: int, length: int) -> float:
        return self.static_gib + batch * length * self.per_token_gib[mode]


def usable_gib(budget_gib: float) -> float:
    return budget_gib - max(HEADROOM_MIN_GIB, HEADROOM_FRACTION * budget_gib)


def candidates(
    memory: MemoryModel, modes: tuple[str, ...], per_device_times_accumulation: int, length: int, budget_gib: float
) -> list[Plan]:
    """Every plan that keeps per-device batch x accumulation and fits the budget, fastest first."""
    plans = []
    for mode in modes:
        for batch in range(1, per_device_times_accumulation + 1):
            if per_device_times_accumulation % batch:
                continue
            peak = memory.peak_gib(mode, batch, length)
            if peak <= usable_gib(budget_gib):
                plans.append(
                    Plan(mode, batch, per_device_times_accumulation // batch, peak, relative_speed(mode, batch, length))
                )
    return sorted(plans, key=lambda plan: (-plan.relative_speed, plan.predicted_peak_gib))


@dataclass
class Autotuner:
    """One run's plan, the plans tried before it, and its cache entry (measurements of earlier runs, their OOMs)."""

    key: dict[str, Any]
    cache_file: Path
    memory: MemoryModel
    modes: tuple[str, ...]
    per_device_times_accumulation: int
    length: int
    budget_gib: float
    plan: Plan | None = None
    failed: list[dict[str, Any]] = field(default_factory=list)
    source: str = "prior"  # prior | measured: where the per-token coefficients came from

    def choose(self) -> Plan | None:
        plans = candidates(self.memory, self.modes, self.per_device_times_accumulation, self.length, self.budget_gib)
        self.plan = plans[0] if plans else None
        return self.plan

    def fallback(self) -> Plan | None:
        """After an out-of-memory error with the current plan: the next fastest plan the corrected model fits.

        The failed mode's GiB per token is raised to what would have filled the budget, so this plan and every plan
        of that mode at least as large are excluded, here and (through the cache) in later runs with this key.
        """
        failed = self.plan
        if failed is None:
            return None
        self.failed.append(failed.to_json())
        tokens = failed.per_device_train_batch_size * self.length
        at_least = (usable_gib(self.budget_gib) - self.memory.static_gib) / tokens * 1.05
        mode = failed.checkpointing
        self.memory.per_token_gib[mode] = max(self.memory.per_token_gib[mode], at_least)
        self._store(oom={**failed.to_json(), "per_token_gib_at_least": at_least})
        return self.choose()

    def apply(self, trainer_cfg: Any) -> Any:
        """The trainer's config with this plan's batch, accumulation and checkpointing."""
        plan = self.plan
        return dataclasses.replace(
            trainer_cfg,
            per_device_train_batch_size=plan.per_device_train_batch_size,
            gradient_accumulation_steps=plan.gradient_accumulation_steps,
            gradient_checkpointing=plan.checkpointing != "off",
        )

    def record(self, peak_gib: float, tokens_per_second: float | None, longest_row: int) -> None:
        """A finished run's measured peak for its plan, so later runs with this key plan from it.

        ``longest_row``: the tokens of the run's longest record (the peak was reached on rows no longer than that).
        """
        plan = self.plan
        self._store(
            measurement={
                "checkpointing": plan.checkpointing,
                "per_device_train_batch_size": plan.per_device_train_batch_size,
                "row_tokens": min(longest_row, self.length),
                "static_gib": self.memory.static_gib,
                "peak_gib": peak_gib,
                "tokens_per_second": tokens_per_second,
            }
        )

    def to_json(self) -> dict[str, Any]:
        """What metrics.json and run.json say about the plan."""
        return {
            **(self.plan.to_json() if self.plan else {}),
            "budget_gib": round(self.budget_gib, 2),
            "static_gib": round(self.memory.static_gib, 2),
            "model": self.source,
            "failed": list(self.failed),
            "cache": str(self.cache_file),
        }

    def _store(self, measurement: dict[str, Any] | None = None, oom: dict[str, Any] | None = None) -> None:
        entry = read_cache(self.cache_file) or {"key": self.key, "measurements": [], "oom": []}
        if measurement:
            entry["measurements"] = [*entry["measurements"], measurement][-20:]
        if oom:
            entry["oom"] = [*entry["oom"], oom][-20:]
        rundir.write_json(self.cache_file, entry)


def read_cache(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text()) if path.is_file() else None
    except (OSError, ValueError):  # a cache is never worth a failed run
        return None


def cache_path(cache_dir: str | Path, key: dict[str, Any]) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return Path(cache_dir) / "memory_plans" / f"{digest}.json"


def fitted(prior: MemoryModel, entry: dict[str, Any] | None, length: int) -> tuple[MemoryModel, str]:
    """The prior, corrected by the cache entry: each mode's largest measured GiB per token (5% added), and for each
    out-of-memory plan a coefficient at which it no longer fits."""
    if not entry:
        return prior, "prior"
    per_token = dict(prior.per_token_gib)
    measured = {}
    for row in entry.get("measurements", []):
        tokens = row["per_device_train_batch_size"] * min(row["row_tokens"], length)
        value = max(row["peak_gib"] - row["static_gib"], 0.0) / tokens * 1.05
        measured[row["checkpointing"]] = max(measured.get(row["checkpointing"], 0.0), value)
    per_token.update({mode: value for mode, value in measured.items() if mode in per_token})
    for row in entry.get("oom", []):
        mode = row["checkpointing"]
        if mode in per_token:
            per_token[mode] = max(per_token[mode], row["per_token_gib_at_least"])
    return MemoryModel(prior.static_gib, per_token), "measured" if measured else "prior"


def adapter_parameters(model: Any, targets: list[str], r: int) -> int:
    """LoRA parameters a fresh adapter of rank ``r`` on ``targets`` adds: r x (in + out) per targeted linear."""
    total = 0
    for name, module in model.named_modules():
        if name.rsplit(".", 1)[-1] in targets and hasattr(module, "in_features") and hasattr(module, "out_features"):
            total += r * (module.in_features + module.out_features)
    return total


def autotune(
    model: Any,
    *,
    model_path: str,
    backend: str,
    lora_r: int,
    lora_targets: list[str],
    per_device_train_batch_size: int,
    gradient_accumulation_steps: int,
    length: int,
    cache_dir: str | Path,
    budget_gib: float | None,
    distributed: bool,
) -> Autotuner | None:
    """The plan for this run on the current CUDA GPU, or None (no CUDA, or a model whose shape we cannot read).

    Call with the base model loaded and before the adapter exists. ``budget_gib`` None takes the GPU's free memory
    plus what this process holds; under DDP the GPU's total memory, so that every rank plans alike.
    """
    import torch

    shape = ModelShape.of(getattr(model, "config", None))
    if not torch.cuda.is_available() or shape is None:
        return None
    device = torch.cuda.current_device()
    properties = torch.cuda.get_device_properties(device)
    if budget_gib is None:
        if distributed:
            budget_gib = properties.total_memory / GIB
        else:
            free, _ = torch.cuda.mem_get_info(device)
            budget_gib = (free + torch.cuda.memory_reserved(device)) / GIB
    static = torch.cuda.memory_allocated(device) / GIB
    static += adapter_parameters(model, lora_targets, lora_r) * ADAPTER_BYTES_PER_PARAMETER / GIB + WORKSPACE_GIB
    modes = MODES if backend == "unsloth" else ("off", "on")
    prior = MemoryModel(static, {mode: shape.prior_bytes_per_token(mode) / GIB for mode in modes})
    key = {
        "model": model_path,
        "backend": backend,
        "gpu": properties.name,
        "gpu_gib": round(properties.total_memory / GIB, 1),
        "length": length,
        "r": lora_r,
        "targets": sorted(lora_targets),
    }
    path = cache_path(cache_dir, key)
    memory, source = fitted(prior, read_cache(path), length)
    tuner = Autotuner(
        key=key,
        cache_file=path,
        memory=memory,
        modes=modes,
        per_device_times_accumulation=per_device_train_batch_size * gradient_accumulation_steps,
        length=length,
        budget_gib=budget_gib,
        source=source,
    )
    return tuner if tuner.choose() is not None else None
