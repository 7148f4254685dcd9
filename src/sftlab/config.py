"""Typed schemas of every config group, registered in Hydra's ConfigStore.

``conf/train.yaml`` starts its defaults list with ``train_schema``, so each group's YAML is merged into a typed
node: an unknown key or a wrong type, in a file or an override, fails at start with Hydra's own message. The entry
points convert the composed config once (:func:`to_schema`) into these dataclasses, whose ``__post_init__`` checks
the values a type cannot (a negative learning rate, a dropout of 1): one line naming the key, before any model loads.
Everything below the entry points takes the dataclasses.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from sftlab import objectives
from sftlab.errors import SftlabError
from sftlab.process import register_resolvers


def require(condition: bool, key: str, rule: str, value: Any) -> None:
    """One line naming the config key when a value breaks its rule."""
    if not condition:
        raise SftlabError(f"{key} must be {rule}, got {value!r}")


LLAMA_PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


class ModelSource(str, Enum):
    hub = "hub"  # a Hub id or a local directory in transformers format
    embedded = "embedded"  # a GGUF file shipped inside a Python package, converted once and cached
    tiny_random = "tiny_random"  # a tiny Llama with random weights and a tokenizer the code trains


class Backend(str, Enum):
    auto = "auto"  # unsloth when a CUDA GPU is present and unsloth imports, else hf
    unsloth = "unsloth"
    hf = "hf"


class Precision(str, Enum):
    auto = "auto"  # bf16 on a GPU that supports it, else fp16 on GPU; fp32 on CPU
    bf16 = "bf16"
    fp16 = "fp16"
    fp32 = "fp32"


class RecordFormat(str, Enum):
    auto = "auto"  # each file's first record decides
    reasoning = "reasoning"  # the reasoning-SFT schema (docs/dataset.md)
    alpaca = "alpaca"  # instruction, input, output
    sharegpt = "sharegpt"  # conversations: [{from, value}]
    messages = "messages"  # messages: [{role, content}]


class SaveStrategy(str, Enum):
    steps = "steps"  # a checkpoint every save_steps (0: none)
    epoch = "epoch"  # a checkpoint at the end of every epoch
    no = "no"


class PromptStyle(str, Enum):
    template = "template"  # Jinja2 templates in the config
    chat_template = "chat_template"  # the tokenizer's own chat template


@dataclass
class TinyModelConfig:
    hidden_size: int = 64
    intermediate_size: int = 128
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    vocab_size: int = 1024
    max_position_embeddings: int = 2048


@dataclass
class ModelConfig:
    name: str = MISSING
    source: ModelSource = ModelSource.hub
    path: str = ""  # Hub id or local dir (source=hub); the package name holding the GGUF (source=embedded)
    load_in_4bit: bool = False
    # Run the model's own code from the Hub (some architectures need it): off unless the user trusts the repo.
    trust_remote_code: bool = False
    tiny: TinyModelConfig = field(default_factory=TinyModelConfig)


@dataclass
class LoraConfig:
    r: int = 16
    alpha: int = 16
    dropout: float = 0.0
    target_modules: list[str] = field(default_factory=lambda: list(LLAMA_PROJECTIONS))
    use_rslora: bool = False
    bias: str = "none"

    def __post_init__(self) -> None:
        require(self.r >= 1, "lora.r", ">= 1", self.r)
        require(self.alpha > 0, "lora.alpha", "> 0", self.alpha)
        require(0.0 <= self.dropout < 1.0, "lora.dropout", "in [0, 1)", self.dropout)
        require(bool(self.target_modules), "lora.target_modules", "a non-empty list", self.target_modules)


@dataclass
class TrainerConfig:
    max_steps: int = -1  # > 0 overrides num_train_epochs
    num_train_epochs: float = 1.0
    per_device_train_batch_size: int = 4
    per_device_eval_batch_size: int = 8
    gradient_accumulation_steps: int = 2
    learning_rate: float = 2e-4
    lr_scheduler_type: str = "linear"
    warmup_steps: float = 0.03  # a fraction of the steps when < 1
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    # transformers' own default on torch >= 2.8: AdamW's update in one fused kernel, the same algorithm as adamw_torch
    # (whose chain of foreach kernels took 10 ms of CPU a step of the 8B on short rows, the fused one 3 ms).
    optim: str = "adamw_torch_fused"
    max_seq_length: int = 1024
    completion_only_loss: bool = True
    # Batches of records of similar length, so little padding: the fastest batching measured (docs/benchmarks.md).
    group_by_length: bool = True
    # No padding at all (one row per batch) or several records per row (TRL's best-fit-decreasing packing, boundaries
    # kept): less memory, but with torch < 2.12 slower than group_by_length under Unsloth (per-record attention).
    padding_free: bool = False
    packing: bool = False
    # Pad each batch to a multiple of this many tokens (null: to its longest row): fewer distinct shapes for compiled
    # code (and CUDA graphs), for some padded compute; the loss ignores the padding either way.
    pad_to_multiple_of: int | None = None
    gradient_checkpointing: bool = True
    # On a CUDA GPU: choose checkpointing, per-device batch and accumulation for speed, keeping per-device batch x
    # accumulation (sftlab.training.memory_plan); memory_budget_gib caps the GPU memory it plans for (null: the free).
    autotune: bool = True
    memory_budget_gib: float | None = None
    precision: Precision = Precision.auto
    eval_steps: int = 50  # evaluation loss on the validation split every N steps; 0 switches it off
    eval_on_start: bool = False  # also before the first step, to see how far the loss fell
    logging_steps: int = 10
    save_steps: int = 100
    save_total_limit: int = 2
    save_strategy: SaveStrategy = SaveStrategy.steps
    dataloader_num_workers: int = 0
    resume_from_checkpoint: bool = False
    save_adapter: bool = True

    def __post_init__(self) -> None:
        require(self.learning_rate > 0, "trainer.learning_rate", "> 0", self.learning_rate)
        require(
            self.per_device_train_batch_size >= 1,
            "trainer.per_device_train_batch_size",
            ">= 1",
            self.per_device_train_batch_size,
        )
        require(
            self.per_device_eval_batch_size >= 1,
            "trainer.per_device_eval_batch_size",
            ">= 1",
            self.per_device_eval_batch_size,
        )
        require(
            self.gradient_accumulation_steps >= 1,
            "trainer.gradient_accumulation_steps",
            ">= 1",
            self.gradient_accumulation_steps,
        )
        require(self.max_seq_length >= 16, "trainer.max_seq_length", ">= 16", self.max_seq_length)
        multiple = self.pad_to_multiple_of
        require(multiple is None or multiple >= 1, "trainer.pad_to_multiple_of", ">= 1 (or null)", multiple)
        budget = self.memory_budget_gib
        require(budget is None or budget > 0, "trainer.memory_budget_gib", "> 0 (or null)", budget)
        require(
            self.max_steps > 0 or self.num_train_epochs > 0,
            "trainer.num_train_epochs",
            "> 0 (or trainer.max_steps > 0)",
            self.num_train_epochs,
        )
        require(self.warmup_steps >= 0, "trainer.warmup_steps", ">= 0", self.warmup_steps)
        require(self.max_grad_norm >= 0, "trainer.max_grad_norm", ">= 0", self.max_grad_norm)
        require(self.weight_decay >= 0, "trainer.weight_decay", ">= 0", self.weight_decay)
        require(self.logging_steps >= 1, "trainer.logging_steps", ">= 1", self.logging_steps)
        require(self.eval_steps >= 0, "trainer.eval_steps", ">= 0 (0: no evaluation loss)", self.eval_steps)
        require(self.save_steps >= 0, "trainer.save_steps", ">= 0 (0: no checkpoints)", self.save_steps)


@dataclass
class PromptConfig:
    name: str = MISSING
    style: PromptStyle = PromptStyle.template
    # Jinja2 template of the prompt (everything the model is given) and of the completion (what it learns to
    # write). The completion template should end with {{ eos_token }} exactly once.
    prompt_template: str = ""
    completion_template: str = "{{ output }}{{ eos_token }}"
    # The optional parts of a format as two-level switches, visible to the templates as ``components.<name>``.
    components: dict[str, bool] = field(default_factory=dict)
    system_messages: dict[str, str] = field(default_factory=dict)
    keyword_phrase: str = ", referring to relevant field information such as {keywords},"
    # The original recipe's keyword fill: a reasoning that carries keyword_placeholder has it replaced by
    # keyword_fill (keywords of >= 3 characters); one without it gets keyword_phrase woven in before " before"
    # when weave_keywords is on (the bundled data carries no placeholder).
    keyword_placeholder: str = ", referring to relevant field information, before"
    keyword_fill: str = ", referring to relevant field information such as {keywords}, before"
    weave_keywords: bool = True


@dataclass
class ColumnsConfig:
    """Your column names for the record fields, e.g. ``'data.columns={instruction: question, output: answer}'``;
    empty: the field's own name. A key per field, so an override names existing keys and a typo fails at start."""

    instruction: str = ""
    input: str = ""
    category: str = ""
    language: str = ""
    field: str = ""
    keywords: str = ""
    flag: str = ""
    reasoning: str = ""
    transformed_input: str = ""
    output: str = ""
    system: str = ""
    conversations: str = ""
    messages: str = ""


@dataclass
class PairColumnsConfig:
    """Your column names for the test-pair fields, e.g. ``'eval.columns={source: ja, reference: en}'``."""

    id: str = ""
    source: str = ""
    reference: str = ""
    direction: str = ""
    source_lang: str = ""
    target_lang: str = ""


@dataclass
class DataConfig:
    train_files: list[str] = field(default_factory=list)
    val_files: list[str] = field(default_factory=list)
    val_fraction: float = 0.1  # used only when val_files is empty
    languages: list[str] = field(default_factory=list)  # keep only these languages; empty keeps all
    max_train_records: int | None = None
    max_val_records: int | None = None
    format: RecordFormat = RecordFormat.auto
    columns: ColumnsConfig = field(default_factory=ColumnsConfig)
    split: str = "train"  # the split read from a folder or Hub id in train_files
    val_split: str = "validation"  # ... in val_files
    revision: str | None = None  # a Hub dataset's branch, tag or commit
    subset: str | None = None  # a Hub dataset's configuration name


@dataclass
class TranslationRequestConfig:
    """How a test pair is rendered as a translator-flag record in the run's prompt format."""

    instructions: dict[str, str] = field(default_factory=dict)  # by source code; {target} is filled in
    language_names: dict[str, dict[str, str]] = field(default_factory=dict)  # [source code][target code]
    record_languages: dict[str, str] = field(default_factory=dict)  # code -> English, Japanese, Chinese
    reasoning: str = ""
    field: str = "translation"
    keywords: list[str] = dataclasses.field(default_factory=list)


@dataclass
class EvalConfig:
    enabled: bool = True  # evaluate translations at the end of training
    test_file: str = "${sftlab.bundled:translation_test.jsonl}"
    directions: list[str] = field(default_factory=list)  # e.g. [ja-en]; empty = every direction present
    max_pairs_per_direction: int | None = None
    batch_size: int = 32
    max_new_tokens: int = 96
    num_beams: int = 1
    # What the run returns to a sweep (sftlab.objectives): chrf | chrf_pp | bleu (maximised), eval_loss |
    # train_loss | train_seconds | peak_memory_gib (minimised); a list of them for a multi-objective sweep.
    objective: Any = "chrf"
    adapter_dir: str | None = None  # sftlab.evaluate: an adapter to score; null scores the base model alone
    bootstrap_resamples: int = 1000
    request: TranslationRequestConfig = field(default_factory=TranslationRequestConfig)
    # test_file may be a file, a folder or a Hub id; columns maps pair fields onto the set's own names.
    columns: PairColumnsConfig = field(default_factory=PairColumnsConfig)
    split: str = "test"
    revision: str | None = None
    subset: str | None = None

    def __post_init__(self) -> None:
        objectives.names(self.objective)  # one line naming an unknown objective
        require(self.batch_size >= 1, "eval.batch_size", ">= 1", self.batch_size)
        require(self.max_new_tokens >= 1, "eval.max_new_tokens", ">= 1", self.max_new_tokens)
        require(self.num_beams >= 1, "eval.num_beams", ">= 1", self.num_beams)


@dataclass
class LoggerConfig:
    name: str = "none"  # wandb | none
    project: str = "sftlab"
    entity: str | None = None
    mode: str = "auto"  # auto (online with an API key, else offline) | online | offline | disabled
    group: str | None = None  # defaults to the sweep dir for multiruns
    tags: list[str] = field(default_factory=list)
    log_adapter: bool = False
    sample_table_rows: int = 16


@dataclass
class BackendConfig:
    name: Backend = Backend.auto


@dataclass
class PreviewConfig:
    """``python -m sftlab.preview``: how many records to show, and a JSONL file to write them to instead."""

    limit: int | None = None
    out: str | None = None


@dataclass
class TrainConfig:
    model: ModelConfig = MISSING
    lora: LoraConfig = MISSING
    trainer: TrainerConfig = MISSING
    prompt: PromptConfig = MISSING
    data: DataConfig = MISSING
    eval: EvalConfig = MISSING
    logger: LoggerConfig = MISSING
    backend: BackendConfig = MISSING
    seed: int = 42
    cache_dir: str = MISSING
    run_name: str = ""  # a label for trackers and reports; the run dir is Hydra's
    preview: PreviewConfig = field(default_factory=PreviewConfig)


def to_schema(cfg: DictConfig) -> TrainConfig:
    """The composed config as the schema's dataclasses, interpolations resolved and every value checked."""
    return OmegaConf.to_object(cfg)  # type: ignore[return-value]


def register_configs() -> None:
    """Put the schema into Hydra's ConfigStore (the YAML files in conf/ are merged onto it), with the resolvers
    ``conf/hydra/default.yaml`` names the run dir by."""
    ConfigStore.instance().store(name="train_schema", node=TrainConfig)
    register_resolvers()
    if not OmegaConf.has_resolver("sftlab.bundled"):
        OmegaConf.register_new_resolver("sftlab.bundled", bundled_path)


def bundled_path(relative: str) -> str:
    """``${sftlab.bundled:reasoning/train_en.jsonl}``: a file of the data shipped in the package, from anywhere."""
    return str(Path(str(importlib.resources.files("sftlab.bundled"))) / relative)
