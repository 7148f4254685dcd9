"""The records a run trains and validates on, and the test pairs it is scored on, as the config selects them."""

from __future__ import annotations

import dataclasses
import sys

from sftlab.config import ColumnsConfig, DataConfig, EvalConfig, PairColumnsConfig
from sftlab.data.records import (
    LANGUAGES,
    TranslationPair,
    absent_parts_note,
    load_records,
    load_translation_pairs,
    split_records,
)
from sftlab.errors import SftlabError


def column_map(columns: ColumnsConfig | PairColumnsConfig) -> dict[str, str]:
    """The fields a ``columns`` config maps onto other column names (an empty name keeps the field's own)."""
    return {name: column for name, column in dataclasses.asdict(columns).items() if column}


def load_splits(data: DataConfig, seed: int) -> tuple[list[dict], list[dict]]:
    """Validated training and validation records as plain dicts, filtered and capped as configured.

    Says on stderr (one line, so a preview's JSON on stdout stays clean) which fields the records' formats lack.
    """
    options = {"columns": column_map(data.columns), "fmt": data.format.value}
    options.update(revision=data.revision, subset=data.subset)
    train = load_records(data.train_files, split=data.split, **options)
    if data.val_files:
        val = load_records(data.val_files, split=data.val_split, **options)
    else:
        train, val = split_records(train, data.val_fraction, seed)
    note = absent_parts_note([*train, *val])
    if note:
        print(f"[sftlab] data: {note}", file=sys.stderr)
    if data.languages:
        unknown = set(data.languages) - set(LANGUAGES)
        if unknown:
            raise SftlabError(f"data.languages: unknown language(s) {', '.join(sorted(unknown))}")
        train = [r for r in train if r.language in data.languages]
        val = [r for r in val if r.language in data.languages]
    train = train[: data.max_train_records] if data.max_train_records else train
    val = val[: data.max_val_records] if data.max_val_records else val
    if not train:
        raise SftlabError("no training records left after data.languages / data.max_train_records")
    return [r.as_dict() for r in train], [r.as_dict() for r in val]


def load_test_pairs(eval_cfg: EvalConfig) -> list[TranslationPair]:
    """The translation test pairs to score (its file, folder or Hub id, directions, cap and column names), or none
    when the evaluation is off."""
    if not eval_cfg.enabled:
        return []
    return load_translation_pairs(
        eval_cfg.test_file,
        eval_cfg.directions,
        eval_cfg.max_pairs_per_direction,
        columns=column_map(eval_cfg.columns),
        split=eval_cfg.split,
        revision=eval_cfg.revision,
        subset=eval_cfg.subset,
    )
