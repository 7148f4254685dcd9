"""Answers from a trained model: a question as a record, one answer streamed or a file of them in batches, and the
reasoning and response read off the format's tags.

The reasoning-tag formats give the model a ``<|reasoning|>`` section and end the prompt with ``<|response|>``; a
format may also leave the reasoning to the model. Either way both sections are read from the prompt and the
generation together, so an answer shows the reasoning it was written under. A format without tags (alpaca, the
chat template) has no reasoning: its whole answer is the response.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from sftlab.data.prompts import prompt_token_ids
from sftlab.evaluation.generation import generate
from sftlab.evaluation.translation import extract_response

TAG = re.compile(r"<\|([A-Za-z_]+)\|>")
REASONING, RESPONSE = "reasoning", "response"


@dataclass(frozen=True)
class Sampling:
    """Greedy when ``temperature`` is 0; otherwise nucleus sampling, reproducible under ``seed``."""

    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None

    def generate_kwargs(self) -> dict[str, Any]:
        if self.temperature <= 0:
            return {"do_sample": False}
        return {"do_sample": True, "temperature": self.temperature, "top_p": self.top_p}


@dataclass(frozen=True)
class Answer:
    response: str
    reasoning: str | None  # None: the format has no reasoning section
    generated: str  # the model's text as generated, special tokens included
    stopped: bool  # False when generation ran into max_new_tokens


def question_record(question: str, context: str, flag: str, language: str, reasoning: str) -> dict[str, Any]:
    """A question as a record of the reasoning schema, as the prompt formats render training records."""
    return {
        "instruction": question,
        "input": context,
        "category": "open_qa",
        "language": language,
        "field": "",
        "keywords": "",
        "flag": flag,
        "reasoning": reasoning,
        "transformed_input": "",
        "output": "",
    }


def sections(text: str) -> list[tuple[str, str]]:
    """``(tag, text up to the next tag)`` for every ``<|tag|>`` of ``text``, in order."""
    marks = list(TAG.finditer(text))
    ends = [mark.start() for mark in marks[1:]] + [len(text)] if marks else []
    return [(mark.group(1), text[mark.end() : end].strip()) for mark, end in zip(marks, ends, strict=True)]


def parse_answer(prompt: str, generated: str, eos_token: str, stopped: bool) -> Answer:
    """The response (the first ``<|response|>`` section) and the reasoning (the last ``<|reasoning|>`` section
    before it) of prompt and generation; without a response tag, the whole answer is the response."""
    text = generated.split(eos_token, 1)[0] if eos_token else generated
    found = sections(prompt + text)
    tags = [tag for tag, _ in found]
    if RESPONSE not in tags:
        return Answer(extract_response(generated, eos_token), None, generated, stopped)
    at = tags.index(RESPONSE)
    reasoning = [body for tag, body in found[:at] if tag == REASONING]
    return Answer(found[at][1], reasoning[-1] if reasoning else None, generated, stopped)


@torch.inference_mode()
def answer_streamed(
    model: Any, tokenizer: Any, prompt: str, max_new_tokens: int, sampling: Sampling, stream: bool = True
) -> Answer:
    """One answer, its tokens printed to stdout as they are generated."""
    from transformers import TextStreamer

    if sampling.seed is not None:
        torch.manual_seed(sampling.seed)
    ids = torch.tensor([prompt_token_ids(tokenizer, prompt)], device=next(model.parameters()).device)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    streamer = TextStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True) if stream else None
    model.eval()
    output = model.generate(
        input_ids=ids,
        attention_mask=torch.ones_like(ids),
        max_new_tokens=max_new_tokens,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=pad_id,
        streamer=streamer,
        **sampling.generate_kwargs(),
    )
    new_tokens = output[0, ids.shape[1] :].tolist()
    stopped = tokenizer.eos_token_id in new_tokens
    if stopped:
        new_tokens = new_tokens[: new_tokens.index(tokenizer.eos_token_id) + 1]
    generated = tokenizer.decode(new_tokens, skip_special_tokens=False)
    return parse_answer(prompt, generated, tokenizer.eos_token, stopped)


def answer_batch(
    model: Any, tokenizer: Any, prompts: Sequence[str], batch_size: int, max_new_tokens: int
) -> list[Answer]:
    """Greedy answers to many prompts in left-padded batches (the evaluation's batched generation)."""
    padding_side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        generations = generate(model, tokenizer, prompts, batch_size, max_new_tokens, 1)
    finally:
        tokenizer.padding_side = padding_side
    return [
        parse_answer(prompt, generated, tokenizer.eos_token, stopped)
        for prompt, (generated, stopped) in zip(prompts, generations, strict=True)
    ]
