"""Records rendered and tokenized as training sees them, with truncation counted.

Done here, not by SFTTrainer, so truncation can be counted and reported, so a sweep reuses one tokenization per
(tokenizer, prompt format, max length, data), and so the preview command shows exactly what training will see. The
dataset carries ``input_ids`` and ``completion_mask``, the processed form both TRL 1.15 and 1.16 accept.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from datasets import Dataset

from sftlab.data.prompts import PromptFormat, prompt_token_ids
from sftlab.errors import SftlabError
from sftlab.rundir import SplitSummary


@dataclass(frozen=True)
class EncodedRecord:
    """One record exactly as training sees it: the rendered text, its token ids and which of them carry the loss."""

    prompt: str
    completion: str
    input_ids: list[int]  # prompt + completion, cut at max_length
    completion_mask: list[int]  # 1 where the loss is computed
    prompt_tokens: int
    completion_tokens: int

    @property
    def full_length(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def truncated(self) -> bool:
        return self.full_length > len(self.input_ids)


def encode_record(
    record: dict, prompt_format: PromptFormat, tokenizer: Any, max_length: int, completion_only_loss: bool
) -> EncodedRecord:
    """Render a record in the prompt format, tokenize prompt and completion, cut at ``max_length``."""
    example = prompt_format.render(record)
    prompt_ids = prompt_token_ids(tokenizer, example.prompt)
    completion_ids = tokenizer(example.completion, add_special_tokens=False)["input_ids"]
    learn = [0 if completion_only_loss else 1] * len(prompt_ids) + [1] * len(completion_ids)
    return EncodedRecord(
        prompt=example.prompt,
        completion=example.completion,
        input_ids=(prompt_ids + completion_ids)[:max_length],
        completion_mask=learn[:max_length],
        prompt_tokens=len(prompt_ids),
        completion_tokens=len(completion_ids),
    )


@dataclass
class TokenizedSplit:
    dataset: Dataset
    records: int
    truncated: int  # records cut at max_length
    dropped: int  # records whose prompt alone filled max_length (no completion token left to learn)
    tokens: int

    def summary(self) -> SplitSummary:
        return SplitSummary(records=self.records, truncated=self.truncated, dropped=self.dropped, tokens=self.tokens)


_tokenized: dict[str, TokenizedSplit] = {}


def _cache_key(tokenizer: Any, prompt_format: PromptFormat, max_length: int, records: Sequence[dict]) -> str:
    digest = hashlib.sha256()
    digest.update(f"{tokenizer.name_or_path}|{len(tokenizer)}|{max_length}|{prompt_format.fingerprint}".encode())
    digest.update(json.dumps(list(records), ensure_ascii=False, sort_keys=True).encode())
    return digest.hexdigest()


def tokenize_split(
    records: Sequence[dict],
    prompt_format: PromptFormat,
    tokenizer: Any,
    max_length: int,
    completion_only_loss: bool,
    name: str,
) -> TokenizedSplit:
    """Render, tokenize and truncate records; cached within the process."""
    key = _cache_key(tokenizer, prompt_format, max_length, records) + str(completion_only_loss)
    if key in _tokenized:
        return _tokenized[key]

    def encode(record: dict) -> dict[str, Any]:
        encoded = encode_record(record, prompt_format, tokenizer, max_length, completion_only_loss)
        return {
            "input_ids": encoded.input_ids,
            "completion_mask": encoded.completion_mask,
            "full_length": encoded.full_length,
        }

    dataset = Dataset.from_list(list(records)).map(
        encode, remove_columns=list(records[0].keys()), desc=f"Tokenizing {name} ({prompt_format.name})"
    )
    truncated = sum(1 for n in dataset["full_length"] if n > max_length)
    kept = dataset.filter(lambda example: any(example["completion_mask"]), desc=f"Dropping empty {name} records")
    kept = kept.remove_columns(["full_length"])
    split = TokenizedSplit(
        dataset=kept,
        records=len(dataset),
        truncated=truncated,
        dropped=len(dataset) - len(kept),
        tokens=sum(len(ids) for ids in kept["input_ids"]),
    )
    if len(kept) == 0:
        raise SftlabError(
            f"every {name} record was dropped: the prompts alone exceed trainer.max_seq_length={max_length}"
        )
    if len(_tokenized) >= 8:
        _tokenized.pop(next(iter(_tokenized)))
    _tokenized[key] = split
    return split
