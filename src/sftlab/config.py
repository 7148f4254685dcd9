"""Typed schemas of every config group, registered in Hydra's ConfigStore.

``conf/train.yaml`` starts its defaults list with ``train_schema``, so each group's YAML is merged into a typed
node: an unknown key or a wrong type, in a file or an override, fails at start with Hydra's own message.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import Enum

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from sftlab.process import register_resolvers

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
    tiny: TinyModelConfig = field(default_factory=TinyModelConfig)


@dataclass
class LoraConfig:
    r: int = 16
    alpha: int = 16
    dropout: float = 0.0
    target_modules: list[str] = field(default_factory=lambda: list(LLAMA_PROJECTIONS))
    use_rslora: bool = False
    bias: str = "none"


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
    optim: str = "adamw_torch"
    max_seq_length: int = 1024
    completion_only_loss: bool = True
    # Batches of records of similar length, so little padding: the fastest batching measured (docs/benchmarks.md).
    group_by_length: bool = True
    # No padding at all (one row per batch) or several records per row (TRL's best-fit-decreasing packing, boundaries
    # kept): less memory, but with torch < 2.12 slower than group_by_length under Unsloth (per-record attention).
    padding_free: bool = False
    packing: bool = False
    gradient_checkpointing: bool = True
    precision: Precision = Precision.auto
    eval_steps: int = 50  # evaluation loss on the validation split every N steps; 0 switches it off
    eval_on_start: bool = False  # also before the first step, to see how far the loss fell
    logging_steps: int = 10
    save_steps: int = 100
    save_total_limit: int = 2
    dataloader_num_workers: int = 0
    resume_from_checkpoint: bool = False
    save_adapter: bool = True


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


@dataclass
class DataConfig:
    train_files: list[str] = field(default_factory=list)
    val_files: list[str] = field(default_factory=list)
    val_fraction: float = 0.1  # used only when val_files is empty
    languages: list[str] = field(default_factory=list)  # keep only these languages; empty keeps all
    max_train_records: int | None = None
    max_val_records: int | None = None


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
    test_file: str = "data/translation_test.jsonl"
    directions: list[str] = field(default_factory=list)  # e.g. [ja-en]; empty = every direction present
    max_pairs_per_direction: int | None = None
    batch_size: int = 32
    max_new_tokens: int = 96
    num_beams: int = 1
    objective: str = "chrf"  # chrf | chrf_pp | bleu (maximised) or eval_loss (minimised)
    adapter_dir: str | None = None  # sftlab.evaluate: an adapter to score; null scores the base model alone
    bootstrap_resamples: int = 1000
    request: TranslationRequestConfig = field(default_factory=TranslationRequestConfig)


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


def register_configs() -> None:
    """Put the schema into Hydra's ConfigStore (the YAML files in conf/ are merged onto it), with the resolvers
    ``conf/hydra/default.yaml`` names the run dir by."""
    ConfigStore.instance().store(name="train_schema", node=TrainConfig)
    register_resolvers()
