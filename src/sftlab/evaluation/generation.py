"""Batched generation from a causal LM: left-padded batches, longest prompts first, greedy or beam search.

Greedy decoding of a Llama-family model (llama, mistral, qwen2) runs on :class:`StaticDecoder`: the model's own
weights (4-bit ones dequantized once into the compute dtype: the very values the 4-bit path computes with), the LoRA
adapter kept as its low-rank products and computed as the model's own forward computes them (see :class:`Linear`),
a KV cache allocated once per call and, on CUDA, each decoding step compiled (Inductor fuses its element-wise work)
and replayed as one CUDA graph. transformers' ``generate`` on Unsloth's 4-bit inference path took 58 ms a step for
the 8B shape at batch 32 (issue 21): launching a few thousand small kernels and dequantizing every weight again at
each step. Beam search, other architectures, and a GPU without room for the dequantized copy go through
``model.generate`` as before; ``decoder_name`` says which one a model gets, for eval.json.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from sftlab.data.prompts import prompt_token_ids

SUPPORTED = ("llama", "mistral", "qwen2")
ROPE_TYPES = ("default", "linear", "llama3", "yarn")  # the ones whose frequencies do not depend on the length
# logits processors greedy generate would apply from a model's generation_config, with their neutral values
NEUTRAL_GENERATION = {
    "repetition_penalty": (None, 1.0),
    "no_repeat_ngram_size": (None, 0),
    "encoder_no_repeat_ngram_size": (None, 0),
    "bad_words_ids": (None,),
    "min_length": (None, 0),
    "min_new_tokens": (None, 0),
    "forced_bos_token_id": (None,),
    "forced_eos_token_id": (None,),
    "suppress_tokens": (None,),
    "begin_suppress_tokens": (None,),
    "sequence_bias": (None,),
    "exponential_decay_length_penalty": (None,),
}
CHECK_EVERY = 8  # decoding steps between looks at whether every row has ended (each look waits for the GPU)


def decoder_name(model: Any, num_beams: int = 1) -> str:
    """Which decoder :func:`generate` uses for this model: ``static`` (StaticDecoder) or ``transformers``."""
    return "static" if num_beams == 1 and StaticDecoder.supports(model) else "transformers"


@torch.inference_mode()
def generate(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    batch_size: int,
    max_new_tokens: int,
    num_beams: int = 1,
) -> list[tuple[str, bool]]:
    """Greedy (or beam) generation in left-padded batches, longest prompts first.

    Returns (decoded continuation, stopped) per prompt, in input order; ``stopped`` is False when the
    generation ran into ``max_new_tokens`` without an end-of-sequence token.
    """
    return _generate(model, tokenizer, prompts, batch_size, max_new_tokens, num_beams, static=True)


@torch.inference_mode()  # also when called directly (the benchmark, the tests): no autograd graph over the steps
def _generate(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    batch_size: int,
    max_new_tokens: int,
    num_beams: int,
    static: bool,
) -> list[tuple[str, bool]]:
    encoded = [prompt_token_ids(tokenizer, prompt) for prompt in prompts]
    order = sorted(range(len(prompts)), key=lambda i: -len(encoded[i]))
    results: list[tuple[str, bool] | None] = [None] * len(prompts)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    model.eval()
    decoder = None
    if static and num_beams == 1 and prompts:
        rows = min(batch_size, len(prompts))
        longest = max(len(ids) for ids in encoded)
        decoder = StaticDecoder.build(model, rows, longest + max_new_tokens, max_new_tokens)
    device = next(model.parameters()).device
    for start in tqdm(range(0, len(order), batch_size), desc="Generating", unit="batch"):
        batch = order[start : start + batch_size]
        input_ids, attention_mask = left_padded([encoded[i] for i in batch], pad_id)
        width = input_ids.shape[1]
        if decoder is not None:
            generated = decoder.run(input_ids, attention_mask, max_new_tokens, tokenizer.eos_token_id)
        else:
            output = model.generate(
                input_ids=input_ids.to(device),
                attention_mask=attention_mask.to(device),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                num_beams=num_beams,
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=pad_id,
            )
            generated = output[:, width:].tolist()
        for index, new_tokens in zip(batch, generated, strict=True):
            stopped = tokenizer.eos_token_id in new_tokens
            if stopped:
                new_tokens = new_tokens[: new_tokens.index(tokenizer.eos_token_id) + 1]
            results[index] = (tokenizer.decode(new_tokens, skip_special_tokens=False), stopped)
    del decoder
    if torch.cuda.is_available():
        torch.cuda.empty_cache()  # the dequantized copy: a sweep's next trial trains in this memory
    return [result for result in results if result is not None]


def left_padded(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids padded on the left to the longest row, and their attention mask."""
    width = max(len(ids) for ids in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    for row, ids in enumerate(rows):
        input_ids[row, width - len(ids) :] = torch.tensor(ids)
        attention_mask[row, width - len(ids) :] = 1
    return input_ids, attention_mask


@dataclass
class Linear:
    """A linear layer as the decoder runs it: the base weight, and the adapter's A and B (scaling folded into B).

    The adapter's update is computed as the model's own forward computes it. PEFT's layers compute it in the
    adapter's dtype (float32 for a 4-bit base), cast it back and add it. A model Unsloth loaded (its modules carry
    ``_unsloth_fast_path``) runs Unsloth's kernels instead, in training and in its inference path alike
    (``matmul_lora``, ``fast_linear_forward``): A and B cast to the compute dtype and the update accumulated into the
    product's output by one ``addmm_``. It is also the cheaper one: the 8B's prefill of 32 prompts on an H200 took
    614 ms with the float32 update and its casts, 492-499 ms with this.
    """

    weight: torch.Tensor  # [out, in], compute dtype
    bias: torch.Tensor | None = None
    lora_a: torch.Tensor | None = None  # [r, in], the adapter's dtype, or the compute dtype when accumulate
    lora_b: torch.Tensor | None = None  # [out, r]
    accumulate: bool = False  # Unsloth's arithmetic: the update accumulated into the output, in the compute dtype

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        y = F.linear(x, self.weight, self.bias)
        if self.lora_a is None:
            return y
        if self.accumulate:
            update_in = F.linear(x, self.lora_a)
            y.view(-1, y.shape[-1]).addmm_(update_in.view(-1, update_in.shape[-1]), self.lora_b.t())
            return y
        return y + F.linear(F.linear(x.to(self.lora_a.dtype), self.lora_a), self.lora_b).to(y.dtype)

    @classmethod
    def of(cls, module: Any, dtype: torch.dtype) -> Linear | None:
        """A plain, 4-bit (bitsandbytes) or PEFT-LoRA linear module; None for anything else."""
        lora_a = lora_b = None
        accumulate = False
        base = module
        if hasattr(module, "lora_A"):
            active = [name for name in module.active_adapters if name in module.lora_A]
            if len(active) > 1 or getattr(module, "merged", False):
                return None
            if active and not getattr(module, "disable_adapters", False):
                name = active[0]
                if module.use_dora.get(name) or getattr(module, "lora_bias", {}).get(name):
                    return None
                lora_a = module.lora_A[name].weight.detach()
                lora_b = module.lora_B[name].weight.detach() * module.scaling[name]
                accumulate = getattr(module, "_unsloth_fast_path", False)
                if accumulate:
                    lora_a, lora_b = lora_a.to(dtype), lora_b.to(dtype)
            base = module.get_base_layer()
        weight = getattr(base, "weight", None)
        if weight is None or not isinstance(base, torch.nn.Module) or base.__class__.__name__ == "ModulesToSaveWrapper":
            return None
        if getattr(weight, "quant_state", None) is not None:
            import bitsandbytes.functional as bnb

            weight = bnb.dequantize_4bit(weight.data, weight.quant_state).to(dtype)
        elif weight.is_floating_point():
            weight = weight.to(dtype)
        else:
            return None
        bias = base.bias.to(dtype) if getattr(base, "bias", None) is not None else None
        return cls(weight, bias, lora_a, lora_b, accumulate)

    @classmethod
    def fused(cls, parts: list[Linear]) -> Linear:
        """One layer computing ``parts`` side by side (q, k, v; gate, up): one product instead of several."""
        weight = torch.cat([part.weight for part in parts])
        bias = None
        if any(part.bias is not None for part in parts):
            zeros = [torch.zeros(p.weight.shape[0], dtype=p.weight.dtype, device=p.weight.device) for p in parts]
            bias = torch.cat([p.bias if p.bias is not None else zero for p, zero in zip(parts, zeros, strict=True)])
        adapted = [part for part in parts if part.lora_a is not None]
        if not adapted:
            return cls(weight, bias)
        like = adapted[0].lora_a
        lora_a = torch.cat([p.lora_a if p.lora_a is not None else like.new_zeros(0, like.shape[1]) for p in parts])
        blocks = [
            p.lora_b.to(like.dtype) if p.lora_b is not None else like.new_zeros(p.weight.shape[0], 0) for p in parts
        ]
        return cls(weight, bias, lora_a, torch.block_diag(*blocks), adapted[0].accumulate)


@dataclass
class Layer:
    input_norm: torch.Tensor
    qkv: Linear
    o: Linear
    post_norm: torch.Tensor
    gate_up: Linear
    down: Linear


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class StaticDecoder:
    """Greedy decoding of a Llama-family model over a KV cache of fixed size, each step one CUDA graph on a GPU.

    The arithmetic is transformers' own for these models (RMSNorm in float32, rotary embeddings from
    ``ROPE_INIT_FUNCTIONS``; the prompts' attention through ``scaled_dot_product_attention``, as transformers' sdpa
    path, and each step's eager with a float32 softmax), so greedy outputs match ``model.generate``.
    """

    def __init__(self, model: Any, dtype: torch.dtype):
        inner = model.get_base_model() if hasattr(model, "get_base_model") else model
        config = inner.config
        self.config = config
        self.dtype = dtype
        self.heads = config.num_attention_heads
        self.kv_heads = getattr(config, "num_key_value_heads", None) or self.heads
        self.head_dim = getattr(config, "head_dim", None) or config.hidden_size // self.heads
        self.eps = config.rms_norm_eps
        from transformers.activations import ACT2FN

        self.act = ACT2FN[config.hidden_act]
        self.embed = inner.model.embed_tokens.weight.to(dtype)
        self.norm = inner.model.norm.weight
        self.lm_head = Linear.of(inner.lm_head, dtype)
        self.layers = []
        for layer in inner.model.layers:
            attention, mlp = layer.self_attn, layer.mlp
            qkv = [Linear.of(getattr(attention, name), dtype) for name in ("q_proj", "k_proj", "v_proj")]
            gate_up = [Linear.of(mlp.gate_proj, dtype), Linear.of(mlp.up_proj, dtype)]
            self.layers.append(
                Layer(
                    layer.input_layernorm.weight,
                    Linear.fused(qkv),
                    Linear.of(attention.o_proj, dtype),
                    layer.post_attention_layernorm.weight,
                    Linear.fused(gate_up),
                    Linear.of(mlp.down_proj, dtype),
                )
            )
        self.device = self.embed.device
        self.graph: torch.cuda.CUDAGraph | None = None
        self._decode_layer = StaticDecoder._layer  # the function, not a bound method: no cycle keeps a decoder alive

    @staticmethod
    def supports(model: Any) -> bool:
        """Whether the model's architecture and modules are ones this decoder computes exactly."""
        inner = model.get_base_model() if hasattr(model, "get_base_model") else model
        config = getattr(inner, "config", None)
        if getattr(config, "model_type", None) not in SUPPORTED or getattr(config, "use_sliding_window", False):
            return False
        if getattr(config, "sliding_window", None) and config.model_type == "mistral":
            return False
        rope = getattr(config, "rope_parameters", None) or {}
        if rope.get("rope_type", "default") not in ROPE_TYPES:
            return False
        generation = getattr(inner, "generation_config", None)
        for name, neutral in NEUTRAL_GENERATION.items():
            if getattr(generation, name, None) not in neutral:
                return False
        modules = [inner.lm_head]
        for layer in getattr(getattr(inner, "model", None), "layers", []):
            attention, mlp = layer.self_attn, layer.mlp
            modules += [attention.q_proj, attention.k_proj, attention.v_proj, attention.o_proj]
            modules += [mlp.gate_proj, mlp.up_proj, mlp.down_proj]
        return len(modules) > 1 and all(_plain_linear(module) for module in modules)

    @classmethod
    def build(cls, model: Any, rows: int, positions: int, max_new_tokens: int) -> StaticDecoder | None:
        """The decoder for ``rows`` rows of up to ``positions`` tokens, or None (unsupported, or no GPU room)."""
        if not cls.supports(model):
            return None
        dtype = model.get_input_embeddings().weight.dtype
        device = model.get_input_embeddings().weight.device
        if device.type == "cuda" and not _fits(model, dtype, rows, positions):
            return None
        decoder = cls(model, dtype)
        decoder.allocate(rows, positions, max_new_tokens)
        return decoder

    def allocate(self, rows: int, positions: int, max_new_tokens: int) -> None:
        """KV caches, rotary tables and the step's buffers; on CUDA the step is captured as a graph."""
        capacity = -(-positions // 64) * 64
        shape = (rows, self.kv_heads, capacity, self.head_dim)
        self.caches = [
            (
                torch.zeros(shape, dtype=self.dtype, device=self.device),
                torch.zeros(shape, dtype=self.dtype, device=self.device),
            )
            for _ in self.layers
        ]
        self.cos, self.sin = self._rotary(capacity)
        self.rows, self.capacity = rows, capacity
        long = dict(dtype=torch.long, device=self.device)
        self.token = torch.zeros(rows, **long)
        self.position = torch.zeros(rows, **long)
        self.column = torch.zeros(1, **long)
        self.step_index = torch.zeros(1, **long)
        self.mask = torch.zeros(rows, 1, 1, capacity, dtype=torch.bool, device=self.device)
        self.out = torch.zeros(rows, max_new_tokens, **long)
        if self.device.type == "cuda":
            self.compile_step()
            try:
                self._capture()  # its warm-up steps compile
            except torch._dynamo.exc.TorchDynamoException as error:  # tracing or Inductor (e.g. no C compiler)
                warnings.warn(f"the decoding step could not be compiled, so it runs uncompiled: {error}", stacklevel=2)
                self._decode_layer = StaticDecoder._layer
                self._capture()

    def compile_step(self, backend: Any = "inductor") -> None:
        """Compile a decoding step's layer with ``torch.compile`` (one graph shared by every layer: the layer's
        tensors are its arguments), fusing its ~75 small kernels (RMSNorm, rotary, the adapter's casts) into a few;
        the prefill, whose length changes with every batch, stays eager."""
        self._decode_layer = torch.compile(StaticDecoder._layer, backend=backend, dynamic=False, fullgraph=True)

    def _rotary(self, capacity: int) -> tuple[torch.Tensor, torch.Tensor]:
        """cos and sin for every position, computed as transformers' rotary embedding does (float32, then cast)."""
        from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

        rope = getattr(self.config, "rope_parameters", None) or {}
        kind = rope.get("rope_type", "default")
        if kind == "default":
            base = rope.get("rope_theta", getattr(self.config, "rope_theta", 10000.0))
            inv_freq = 1.0 / (base ** (torch.arange(0, self.head_dim, 2, dtype=torch.float) / self.head_dim))
            scaling = 1.0
        else:
            inv_freq, scaling = ROPE_INIT_FUNCTIONS[kind](self.config, None)
        positions = torch.arange(capacity, dtype=torch.float)
        freqs = positions[:, None] * inv_freq.float()[None, :]
        angles = torch.cat((freqs, freqs), dim=-1)
        cos, sin = angles.cos() * scaling, angles.sin() * scaling
        return cos.to(self.dtype).to(self.device), sin.to(self.dtype).to(self.device)

    def _rms(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        hidden = x.to(torch.float32)
        hidden = hidden * torch.rsqrt(hidden.pow(2).mean(-1, keepdim=True) + self.eps)
        return weight * hidden.to(x.dtype)

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Eager attention over the whole cache, each key-value head shared by its group of query heads."""
        rows, heads, length, dim = q.shape
        groups = heads // self.kv_heads
        q = q.reshape(rows, self.kv_heads, groups * length, dim)
        scores = torch.matmul(q, k.transpose(2, 3)) * dim**-0.5
        scores = scores.view(rows, self.kv_heads, groups, length, -1)
        scores = scores.masked_fill(~mask[:, :, None], torch.finfo(scores.dtype).min)
        probs = F.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype)
        out = torch.matmul(probs.view(rows, self.kv_heads, groups * length, -1), v)
        return out.view(rows, heads, length, dim)

    def _forward(self, ids: torch.Tensor, positions: torch.Tensor, columns: torch.Tensor, mask: torch.Tensor):
        """Logits of each row's last token; K and V of ``ids`` go into the cache columns ``columns``."""
        rows, length = ids.shape
        x = F.embedding(ids, self.embed)
        cos, sin = self.cos[positions][:, None], self.sin[positions][:, None]
        run_layer = self._decode_layer if length == 1 else StaticDecoder._layer
        for layer, (k_cache, v_cache) in zip(self.layers, self.caches, strict=True):
            x = run_layer(self, x, layer, k_cache, v_cache, cos, sin, columns, mask)
        return self.lm_head(self._rms(x[:, -1], self.norm))

    def _layer(
        self,
        x: torch.Tensor,
        layer: Layer,
        k_cache: torch.Tensor,
        v_cache: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        columns: torch.Tensor,
        mask: torch.Tensor,
    ) -> torch.Tensor:
        """One decoder layer: ``x`` after it, its K and V written into the cache columns ``columns``."""
        rows, length, _ = x.shape
        sizes = [self.heads * self.head_dim, self.kv_heads * self.head_dim, self.kv_heads * self.head_dim]
        h = self._rms(x, layer.input_norm)
        q, k, v = layer.qkv(h).split(sizes, dim=-1)
        q = q.view(rows, length, -1, self.head_dim).transpose(1, 2)
        k = k.view(rows, length, -1, self.head_dim).transpose(1, 2)
        v = v.view(rows, length, -1, self.head_dim).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k_cache.index_copy_(2, columns, k)
        v_cache.index_copy_(2, columns, v)
        if length > 1:  # the prefill: the prompts fill columns 0..length-1, so they attend to their own K and V alone
            attended = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[..., :length], enable_gqa=True)
        else:
            attended = self._attend(q, k_cache, v_cache, mask)
        x = x + layer.o(attended.transpose(1, 2).reshape(rows, length, -1))
        gate, up = layer.gate_up(self._rms(x, layer.post_norm)).chunk(2, dim=-1)
        return x + layer.down(self.act(gate) * up)

    def _step(self) -> None:
        """One greedy step on the static buffers: the token fed, its column unmasked, the next token written."""
        self.mask.index_fill_(3, self.column, True)
        logits = self._forward(self.token[:, None], self.position[:, None], self.column, self.mask)
        following = logits.argmax(-1)
        self.out.index_copy_(1, self.step_index, following[:, None])
        self.token.copy_(following)
        self.position.add_(1)
        self.column.add_(1)
        self.step_index.add_(1)

    def _capture(self) -> None:
        """Record one step as a CUDA graph (after two warm-up steps on a side stream, as torch requires)."""
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(2):
                self._step()
        torch.cuda.current_stream().wait_stream(side)
        self.step_index.zero_()
        self.column.zero_()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self._step()
        self.graph = graph

    def run(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, max_new_tokens: int, eos: int | None
    ) -> list[list[int]]:
        """Greedy continuations (up to ``max_new_tokens`` tokens each) of one left-padded batch."""
        count, width = input_ids.shape
        if count < self.rows:  # the last, smaller batch: repeat its first row (the graph's shapes are fixed)
            input_ids = torch.cat([input_ids, input_ids[:1].expand(self.rows - count, -1)])
            attention_mask = torch.cat([attention_mask, attention_mask[:1].expand(self.rows - count, -1)])
        ids = input_ids.to(self.device)
        real = attention_mask.to(self.device).bool()
        positions = (real.long().cumsum(-1) - 1).clamp(min=0)
        causal = torch.ones(width, width, dtype=torch.bool, device=self.device).tril()
        # as wide as the cache: a batch of one-token prompts runs the step's layer, which attends over all of it
        prompt_mask = torch.zeros(self.rows, 1, width, self.capacity, dtype=torch.bool, device=self.device)
        eye = torch.eye(width, dtype=torch.bool, device=self.device)
        prompt_mask[:, 0, :, :width] = (causal & real[:, None, :]) | eye  # a padding row sees itself: no empty rows
        columns = torch.arange(width, device=self.device)
        logits = self._forward(ids, positions, columns, prompt_mask)
        self.out.zero_()
        self.out[:, 0] = logits.argmax(-1)
        self.token.copy_(self.out[:, 0])
        self.position.copy_(real.sum(-1))
        self.column.fill_(width)
        self.step_index.fill_(1)
        self.mask.zero_()
        self.mask[:, 0, 0, :width] = real
        steps = 1
        while steps < max_new_tokens:
            if eos is not None and steps % CHECK_EVERY == 0 and bool((self.out[:count, :steps] == eos).any(1).all()):
                break
            if self.graph is not None:
                self.graph.replay()
            else:
                self._step()
            steps += 1
        return self.out[:count, :steps].tolist()


def _plain_linear(module: Any) -> bool:
    """A module :meth:`Linear.of` reads: a linear (plain, bitsandbytes 4-bit) or one PEFT LoRA adapter over one."""
    if hasattr(module, "lora_A"):
        active = [name for name in module.active_adapters if name in module.lora_A]
        if len(active) > 1 or getattr(module, "merged", False):
            return False
        if any(module.use_dora.get(name) or getattr(module, "lora_bias", {}).get(name) for name in active):
            return False
        module = module.get_base_layer()
    weight = getattr(module, "weight", None)
    if weight is None or not hasattr(module, "in_features"):
        return False
    return weight.is_floating_point() or getattr(weight, "quant_state", None) is not None


def _fits(model: Any, dtype: torch.dtype, rows: int, positions: int) -> bool:
    """Whether the GPU has room for the decoder's weight copies, its KV cache and a prefill's activations."""
    config = (model.get_base_model() if hasattr(model, "get_base_model") else model).config
    element = torch.finfo(dtype).bits // 8
    layers = config.num_hidden_layers
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    weights = layers * element * config.hidden_size * (2 * heads * head_dim + 2 * kv_heads * head_dim)
    weights += layers * element * 3 * config.hidden_size * config.intermediate_size
    cache = 2 * layers * rows * kv_heads * positions * head_dim * element
    prefill = rows * positions * (heads * positions * 4 + 4 * config.intermediate_size * element)
    free, _ = torch.cuda.mem_get_info()
    free += torch.cuda.memory_reserved() - torch.cuda.memory_allocated()
    return weights + cache + prefill + 2 * 2**30 < free
