"""A trained adapter merged into its base model (16-bit safetensors), GGUF files of Llama-family models, the Hub.

The merge never touches quantized weights: a base trained in 4-bit is merged into its 16-bit weights, loaded
unquantized, or dequantized first where the checkpoint itself is 4-bit. The merged dir is what plain
``AutoModelForCausalLM.from_pretrained`` loads, tokenizer included.

GGUF is written as llama.cpp's converter (``convert_hf_to_gguf.py``) writes a LLaMA model, through gguf-py: tensor
names from gguf-py's tensor map, the query and key projections permuted into llama.cpp's rotary layout (transformers'
GGUF loader permutes them back), norms in F32, a tied output head left out, and the byte-level BPE vocabulary with
its merges and special tokens.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sftlab.errors import SftlabError

GGUF_TYPES = ("f16", "q8_0")
GGUF_ARCHITECTURES = ("LlamaForCausalLM",)  # llama.cpp's "llama": Llama 2/3, SmolLM2, TinyLlama, ...
DEFAULT_PRE_TOKENIZER = "default"  # llama.cpp's name for its standard byte-level split


def _empty_target(out_dir: Path) -> None:
    if out_dir.exists() and any(out_dir.iterdir()):
        raise SftlabError(f"{out_dir} exists and is not empty; name a new dir")


def _tokenizer(base_path: str, adapter_dir: Path, trust_remote_code: bool) -> Any:
    """The tokenizer training saved beside the adapter, else the base model's own."""
    from transformers import AutoTokenizer

    source = adapter_dir if (adapter_dir / "tokenizer_config.json").is_file() else base_path
    return AutoTokenizer.from_pretrained(str(source), trust_remote_code=trust_remote_code)


def load_unquantized(base_path: str, dtype: torch.dtype, trust_remote_code: bool = False) -> Any:
    """The base in 16-bit (fp32 on CPU, for an exact merge): a 4-bit checkpoint is dequantized on the GPU."""
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(base_path, trust_remote_code=trust_remote_code)
    cuda = torch.cuda.is_available()
    kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code, **({"device_map": {"": 0}} if cuda else {})}
    if getattr(config, "quantization_config", None) is None:
        return AutoModelForCausalLM.from_pretrained(base_path, dtype=dtype if cuda else torch.float32, **kwargs)
    if not cuda:
        raise SftlabError(f"'{base_path}' is a quantized checkpoint: merging needs a CUDA GPU to dequantize it")
    model = AutoModelForCausalLM.from_pretrained(base_path, dtype=dtype, **kwargs)
    return model.dequantize(dtype=dtype)


def merge_adapter(
    base_path: str,
    adapter_dir: Path,
    out_dir: Path,
    dtype: torch.dtype = torch.bfloat16,
    trust_remote_code: bool = False,
) -> Path:
    """The adapter merged into an unquantized copy of the base, saved in ``dtype`` with the tokenizer."""
    from peft import PeftModel

    _empty_target(out_dir)
    model = PeftModel.from_pretrained(load_unquantized(base_path, dtype, trust_remote_code), str(adapter_dir))
    merged = model.merge_and_unload().to(dtype)
    merged.save_pretrained(out_dir)
    _tokenizer(base_path, adapter_dir, trust_remote_code).save_pretrained(out_dir)
    return out_dir


def merge_with_unsloth(
    adapter_dir: Path, out_dir: Path, max_seq_length: int, load_in_4bit: bool, trust_remote_code: bool = False
) -> Path:
    """Unsloth's merged 16-bit save; it dequantizes a 4-bit base itself.

    The adapter dir is loaded the way Unsloth loads one, base and adapter together: Unsloth refuses to save an
    adapter attached with ``PeftModel.from_pretrained`` (seen on the GPU machine).
    """
    from unsloth import FastLanguageModel

    _empty_target(out_dir)
    model, tokenizer = FastLanguageModel.from_pretrained(
        model_name=str(adapter_dir),
        max_seq_length=max_seq_length,
        load_in_4bit=load_in_4bit,
        trust_remote_code=trust_remote_code,
    )
    try:
        model.save_pretrained_merged(str(out_dir), tokenizer, save_method="merged_16bit")
    except (RuntimeError, OSError, ValueError) as error:
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise SftlabError(f"Unsloth's merged save failed ({first[:300]}); --backend hf merges with PEFT") from None
    return out_dir


# ------------------------------------------------------------------------------------------------------------ GGUF


def check_gguf_architecture(model_dir: str | Path) -> None:
    """One line for a model llama.cpp's LLaMA graph does not run (read from its config.json alone)."""
    config_file = Path(model_dir) / "config.json"
    architectures = []
    if config_file.is_file():
        architectures = json.loads(config_file.read_text(encoding="utf-8")).get("architectures") or []
    if not set(architectures) & set(GGUF_ARCHITECTURES):
        raise SftlabError(
            f"GGUF export writes Llama-family models ({', '.join(GGUF_ARCHITECTURES)}); "
            f"'{model_dir}' is {', '.join(architectures) or 'of unknown architecture'}"
        )


def embedded_pre_tokenizer(package: str) -> str | None:
    """The llama.cpp pre-tokenizer name the embedded default's own GGUF carries (``smollm`` for SmolLM2)."""
    from gguf import GGUFReader

    spec = importlib.util.find_spec(package)
    locations = (spec.submodule_search_locations or []) if spec is not None else []
    files = sorted(path for location in locations for path in Path(location).rglob("*.gguf"))
    if not files:
        return None
    field = GGUFReader(files[0]).fields.get("tokenizer.ggml.pre")
    return str(field.contents()) if field is not None else None


def _rope_theta(config: Any) -> float:
    """The rotary base; refuses scaled rotary embeddings, which this writer does not carry over."""
    parameters = getattr(config, "rope_parameters", None) or {}
    scaling = getattr(config, "rope_scaling", None) or {}
    rope_type = parameters.get("rope_type") or scaling.get("rope_type") or "default"
    if rope_type != "default":
        raise SftlabError(f"GGUF export: rope_type '{rope_type}' (scaled rotary embeddings) is not supported")
    return float(parameters.get("rope_theta") or getattr(config, "rope_theta", None) or 10000.0)


def _permute(weights: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's rotary layout of a query or key projection (``LlamaModel.permute`` of its converter)."""
    return (
        weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


def _add_vocabulary(writer: Any, model_dir: Path, vocab_size: int, pre_tokenizer: str) -> None:
    """The byte-level BPE vocabulary as llama.cpp's ``gpt2`` tokenizer: tokens padded to the embedding's rows,
    their types, merges and special tokens (``get_vocab_base`` of llama.cpp's converter)."""
    import gguf
    from transformers import AutoTokenizer

    tokenizer_json = model_dir / "tokenizer.json"
    core = json.loads(tokenizer_json.read_text(encoding="utf-8")) if tokenizer_json.is_file() else {}
    model = core.get("model") or {}
    if model.get("type") != "BPE" or "ByteLevel" not in json.dumps(core.get("pre_tokenizer")):
        raise SftlabError(
            f"GGUF export writes byte-level BPE vocabularies (Llama 3, SmolLM2); {model_dir}'s tokenizer.json is "
            f"{model.get('type') or 'missing'} without a byte-level pre-tokenizer"
        )
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    by_id = {index: token for token, index in tokenizer.get_vocab().items()}
    added = tokenizer.added_tokens_decoder
    tokens, types = [], []
    for index in range(vocab_size):
        if index not in by_id:
            tokens.append(f"[PAD{index}]")
            types.append(gguf.TokenType.UNUSED)
        elif index in added:
            tokens.append(by_id[index])
            types.append(gguf.TokenType.CONTROL if added[index].special else gguf.TokenType.USER_DEFINED)
        else:
            tokens.append(by_id[index])
            types.append(gguf.TokenType.NORMAL)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre_tokenizer)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    if not model.get("merges"):  # a vocabulary of bytes alone: transformers' loader rebuilds merges from scores
        writer.add_token_scores([0.0] * vocab_size)
    special = gguf.SpecialVocab(model_dir, load_merges=bool(model.get("merges")), n_vocab=vocab_size)
    if "bos" not in special.special_token_ids and "eos" in special.special_token_ids:
        # transformers' GGUF loader reads the end token from the BOS id, so a vocabulary without one names its end
        # token there, and says it is never added.
        special.special_token_ids["bos"] = special.special_token_ids["eos"]
        special.add_special_token["bos"] = False
    special.add_to_gguf(writer, quiet=True)


def _tensor_type(name: str, data: np.ndarray, gguf_type: str) -> Any:
    """F32 for norms and vectors (as llama.cpp keeps them), Q8_0 where rows split into its blocks, else F16."""
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

    if data.ndim <= 1 or name.endswith("_norm.weight"):
        return GGMLQuantizationType.F32
    block = GGML_QUANT_SIZES[GGMLQuantizationType.Q8_0][0]
    if gguf_type == "q8_0" and data.shape[-1] % block == 0:
        return GGMLQuantizationType.Q8_0
    return GGMLQuantizationType.F16


def write_gguf(model_dir: Path, out_file: Path, gguf_type: str = "f16", pre_tokenizer: str | None = None) -> Path:
    """A GGUF file of a merged Llama-family model dir (its safetensors and tokenizer), in F16 or Q8_0."""
    import gguf
    from safetensors import safe_open
    from transformers import AutoConfig

    if gguf_type not in GGUF_TYPES:
        raise SftlabError(f"--gguf-type must be one of {', '.join(GGUF_TYPES)}, got {gguf_type!r}")
    check_gguf_architecture(model_dir)
    config = AutoConfig.from_pretrained(str(model_dir))
    n_head, n_kv_head, n_layer = config.num_attention_heads, config.num_key_value_heads, config.num_hidden_layers
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // n_head
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, n_layer)
    writer = gguf.GGUFWriter(str(out_file), gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.LLAMA])
    writer.add_name(model_dir.name)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(n_layer)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_rope_dimension_count(head_dim)
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_kv_head)
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_rope_freq_base(_rope_theta(config))
    if head_dim != config.hidden_size // n_head:
        writer.add_key_length(head_dim)
        writer.add_value_length(head_dim)
    writer.add_vocab_size(config.vocab_size)
    file_type = gguf.LlamaFileType.MOSTLY_Q8_0 if gguf_type == "q8_0" else gguf.LlamaFileType.MOSTLY_F16
    writer.add_file_type(file_type)
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    _add_vocabulary(writer, model_dir, config.vocab_size, pre_tokenizer or DEFAULT_PRE_TOKENIZER)
    tied = bool(getattr(config, "tie_word_embeddings", False))
    for shard in sorted(model_dir.glob("*.safetensors")):
        with safe_open(str(shard), framework="pt") as tensors:
            for name in tensors.keys():  # noqa: SIM118 (safe_open is no mapping)
                if name.endswith("rotary_emb.inv_freq") or (tied and name == "lm_head.weight"):
                    continue
                target = names.get_name(name, try_suffixes=(".weight", ".bias"))
                if target is None:
                    raise SftlabError(f"GGUF export: tensor '{name}' has no llama.cpp name")
                data = tensors.get_tensor(name).float().numpy()
                if target.endswith("attn_q.weight"):
                    data = _permute(data, n_head)
                elif target.endswith("attn_k.weight"):
                    data = _permute(data, n_kv_head)
                kind = _tensor_type(target, data, gguf_type)
                writer.add_tensor(target, gguf.quants.quantize(data, kind), raw_dtype=kind)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out_file


# ------------------------------------------------------------------------------------------------------------- Hub


def push_to_hub(repo: str, model_dir: Path, gguf_file: Path | None = None) -> str:
    """The merged model dir (and a GGUF file) uploaded to a Hub model repo, created if needed; returns its URL."""
    from huggingface_hub import HfApi

    api = HfApi()
    try:
        url = str(api.create_repo(repo, repo_type="model", exist_ok=True))
        api.upload_folder(repo_id=repo, folder_path=str(model_dir), commit_message="sftlab export: merged model")
        if gguf_file is not None:
            api.upload_file(path_or_fileobj=str(gguf_file), path_in_repo=gguf_file.name, repo_id=repo)
    except Exception as error:  # network, credentials, permissions: one line, whichever
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise SftlabError(f"cannot push to the Hub repo '{repo}': {first[:300]}") from None
    return url


def scratch_dir(parent: Path | None = None) -> Path:
    """A temporary dir for a merge that only feeds a GGUF file or the Hub."""
    return Path(tempfile.mkdtemp(prefix="sftlab-merged-", dir=parent))


def remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
