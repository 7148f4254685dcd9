"""``python -m sftlab.preview``: every record exactly as training will see it, before any GPU hour is spent.

    python -m sftlab.preview data=custom data.train_files=[mine.jsonl] preview.limit=3
    python -m sftlab.preview experiment=seed_recipe preview.out=preview.jsonl

Composed like ``train`` (same config, same overrides): the records are read and validated as training reads them,
rendered in the prompt format and tokenized with the model's tokenizer, cut at ``trainer.max_seq_length``
(``sftlab.training.tokenize.encode_record``, the function training encodes with). Only the tokenizer loads, never
the model's weights. One JSON object per record, the training split first, each with its ``split``: printed on
stdout (notes go to stderr), or written to ``preview.out``; ``preview.limit`` caps each split.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

from sftlab.commands import builders
from sftlab.commands.job import entry_point
from sftlab.config import TrainConfig, register_configs, to_schema
from sftlab.data.sources import resolve
from sftlab.data.splits import load_splits
from sftlab.errors import SftlabError
from sftlab.training.tokenize import encode_record

register_configs()


def preview_rows(cfg: TrainConfig, train: list[dict], val: list[dict], tokenizer: Any) -> Iterator[dict[str, Any]]:
    """What training sees of each record: its text, its token counts, and whether ``max_seq_length`` cuts it."""
    prompt_format = builders.prompt_format(cfg.prompt, tokenizer)
    limit = cfg.preview.limit
    for split, records in (("train", train), ("validation", val)):
        for record in records[:limit]:
            encoded = encode_record(
                record, prompt_format, tokenizer, cfg.trainer.max_seq_length, cfg.trainer.completion_only_loss
            )
            yield {
                "split": split,
                "prompt": encoded.prompt,
                "completion": encoded.completion,
                "prompt_tokens": encoded.prompt_tokens,
                "completion_tokens": encoded.completion_tokens,
                "truncated": encoded.truncated,
            }


def preview_task(raw: DictConfig, run_dir: Path) -> None:
    cfg = to_schema(raw)
    if cfg.preview.limit is not None and cfg.preview.limit < 1:
        raise SftlabError(f"preview.limit must be >= 1 (or null for every record), got {cfg.preview.limit}")
    train, val = load_splits(cfg.data, cfg.seed)  # bad data fails here, before the tokenizer loads
    tokenizer = builders.models.load_tokenizer(
        builders.models.model_path(cfg.model, cfg.cache_dir), cfg.model.trust_remote_code
    )
    rows = preview_rows(cfg, train, val, tokenizer)
    if not cfg.preview.out:
        for row in rows:
            print(json.dumps(row, ensure_ascii=False))
        return
    out = resolve(cfg.preview.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    counts = {"records": 0, "truncated": 0}
    with out.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            counts["records"] += 1
            counts["truncated"] += row["truncated"]
    print(
        f"[sftlab] preview: {counts['records']} records ({counts['truncated']} cut at "
        f"trainer.max_seq_length={cfg.trainer.max_seq_length}) written to {cfg.preview.out}",
        file=sys.stderr,
    )


@hydra.main(version_base="1.3", config_path="pkg://sftlab.conf", config_name="train")
def main(cfg: DictConfig) -> None:
    entry_point(preview_task)(cfg)


if __name__ == "__main__":
    main()
