"""Batched generation from a causal LM: left-padded batches, longest prompts first, greedy or beam search."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from tqdm.auto import tqdm

from sftlab.data.prompts import prompt_token_ids


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
    encoded = [prompt_token_ids(tokenizer, prompt) for prompt in prompts]
    order = sorted(range(len(prompts)), key=lambda i: -len(encoded[i]))
    results: list[tuple[str, bool] | None] = [None] * len(prompts)
    device = next(model.parameters()).device
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    model.eval()
    for start in tqdm(range(0, len(order), batch_size), desc="Generating", unit="batch"):
        batch = order[start : start + batch_size]
        width = max(len(encoded[i]) for i in batch)
        input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, index in enumerate(batch):
            ids = encoded[index]
            input_ids[row, width - len(ids) :] = torch.tensor(ids)
            attention_mask[row, width - len(ids) :] = 1
        output = model.generate(
            input_ids=input_ids.to(device),
            attention_mask=attention_mask.to(device),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            num_beams=num_beams,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=pad_id,
        )
        for row, index in enumerate(batch):
            new_tokens = output[row, width:].tolist()
            stopped = tokenizer.eos_token_id in new_tokens
            if stopped:
                new_tokens = new_tokens[: new_tokens.index(tokenizer.eos_token_id) + 1]
            results[index] = (tokenizer.decode(new_tokens, skip_special_tokens=False), stopped)
    return [result for result in results if result is not None]
