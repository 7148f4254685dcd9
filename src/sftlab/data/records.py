"""Reasoning-SFT records and translation test pairs: validation, and the train/validation split.

Rows come from ``sftlab.data.sources`` (files, folders, Hub ids) and, in a format other than the reasoning schema,
are converted by ``sftlab.data.formats``. Each row is checked once, in one pass, and a mistake comes back as one
line naming the file, the record and the field.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sftlab.data import formats
from sftlab.data.sources import DataError, Source, read_rows, resolve

LANGUAGES = ("English", "Japanese", "Chinese")
LANGUAGE_CODES = {"en": "English", "ja": "Japanese", "zh": "Chinese"}
FLAGS = ("AI assistant", "creator", "logician", "translator")
CATEGORIES = ("open_qa", "closed_qa", "classification", "creative", "translation", "reasoning", "brainstorm")

_REQUIRED_TEXT = ("instruction", "category", "language", "field", "flag", "reasoning", "output")
_OPTIONAL_TEXT = ("input", "transformed_input")
_ENUMS = {"category": CATEGORIES, "language": LANGUAGES, "flag": FLAGS}


@dataclass(frozen=True)
class Record:
    """One SFT example in the reasoning schema (docs/dataset.md); fields its format lacks are ``""``."""

    instruction: str
    input: str
    category: str
    language: str
    field: str
    keywords: str  # as the prompt shows them: a list is joined with ", ", a string kept as written
    flag: str
    reasoning: str
    transformed_input: str
    output: str
    system: str = ""  # a conversation's own system message; the prompt formats prefer it to the flag's
    format: str = "reasoning"  # the format it was read in (not a field of the record)

    def as_dict(self) -> dict[str, Any]:
        values = asdict(self)
        del values["format"]
        return values


@dataclass(frozen=True)
class TranslationPair:
    """One held-out test sentence with its reference translation."""

    id: str
    source: str
    reference: str
    source_lang: str
    target_lang: str

    @property
    def direction(self) -> str:
        return f"{self.source_lang}-{self.target_lang}"


def keywords_text(value: Any, where: str = "record") -> str:
    """Keywords as one string: the recipe's data has a string, sftlab's bundled data a list (joined with ", ")."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, list | tuple) and all(isinstance(part, str) for part in value):
        return ", ".join(part.strip() for part in value if part.strip())
    raise DataError(f"{where}: field 'keywords' must be a list of strings or a string")


def _text(item: Mapping[str, Any], name: str, where: str, required: bool) -> str:
    if name not in item:
        raise DataError(f"{where}: field '{name}' is missing")
    value = item[name]
    if value is None:
        if required:
            raise DataError(f"{where}: field '{name}' is empty")
        return ""
    if not isinstance(value, str):
        raise DataError(f"{where}: field '{name}' must be a string, got {type(value).__name__}")
    if required and not value.strip():
        raise DataError(f"{where}: field '{name}' is empty")
    return value.strip()


def parse_record(item: Mapping[str, Any], where: str, fmt: str = "reasoning") -> Record:
    """A validated record from one row in format ``fmt``."""
    if fmt in formats.TURN_KEYS:
        item = formats.conversation(item, fmt, where)
        values = {name: _text(item, name, where, required=True) for name in ("instruction", "output")}
        values["system"] = _text(item, "system", where, required=False)
    elif fmt == "alpaca":
        values = {name: _text(item, name, where, required=True) for name in ("instruction", "output")}
        values["input"] = _text(item, "input", where, required=False) if "input" in item else ""
    else:
        values = {name: _text(item, name, where, required=True) for name in _REQUIRED_TEXT}
        values.update({name: _text(item, name, where, required=False) for name in _OPTIONAL_TEXT})
        for name, allowed in _ENUMS.items():
            if values[name] not in allowed:
                raise DataError(
                    f"{where}: field '{name}' has unknown value {values[name]!r} "
                    f"(expected one of: {', '.join(allowed)})"
                )
        if "keywords" not in item:
            raise DataError(f"{where}: field 'keywords' is missing")
        values["keywords"] = keywords_text(item["keywords"], where)
    fields = {name: values.get(name, "") for name in formats.REASONING_FIELDS}
    return Record(**fields, system=values.get("system", ""), format=fmt)


def load_records(
    paths: Iterable[str | Path],
    columns: Mapping[str, str] | None = None,
    fmt: str = "auto",
    split: str = "train",
    revision: str | None = None,
    subset: str | None = None,
) -> list[Record]:
    """Read and validate every record of the given files, folders or Hub ids, in order.

    ``columns`` maps schema fields onto the user's column names; ``fmt`` is one of ``formats.FORMATS`` or
    ``auto`` (each source's first row decides); ``split``, ``revision`` and ``subset`` apply to folders and ids.
    """
    entries = [str(path) for path in paths]
    if not entries:
        raise DataError("no data files configured (data.train_files is empty)")
    columns = dict(columns or {})
    formats.check_columns(columns)
    if fmt != "auto" and fmt not in formats.FORMATS:
        raise DataError(f"data.format: unknown format {fmt!r} (expected auto or one of: {', '.join(formats.FORMATS)})")
    records: list[Record] = []
    for entry in entries:
        source_format = None if fmt == "auto" else fmt
        for where, row in read_rows(Source(entry, split, revision, subset)):
            row = formats.map_columns(row, columns, where)
            source_format = source_format or formats.detect(row, where)
            records.append(parse_record(row, where, source_format))
    return records


def absent_parts_note(records: Iterable[Record]) -> str | None:
    """One line saying which fields the records' formats lack (their prompt parts are left out), or None."""
    counts: dict[str, int] = {}
    for record in records:
        counts[record.format] = counts.get(record.format, 0) + 1
    notes = [
        f"{fmt} records ({count}) have no {', '.join(formats.absent_fields(fmt))}"
        for fmt, count in sorted(counts.items())
        if formats.absent_fields(fmt)
    ]
    return f"{'; '.join(notes)}: the prompt parts that show them are left out" if notes else None


PAIR_FIELDS = frozenset({"id", "source", "reference", "direction", "source_lang", "target_lang"})


def _language(code: str, where: str, name: str) -> str:
    if code not in LANGUAGE_CODES:
        raise DataError(
            f"{where}: {name} has unknown language code {code!r} (expected one of: {', '.join(LANGUAGE_CODES)})"
        )
    return code


def _direction(source_lang: str, target_lang: str, where: str) -> tuple[str, str]:
    if source_lang == target_lang:
        raise DataError(f"{where}: the direction {source_lang}-{target_lang} translates a language into itself")
    return source_lang, target_lang


def parse_direction(direction: str, where: str, name: str = "field 'direction'") -> tuple[str, str]:
    """``"ja-en"`` as ``("ja", "en")``: two different languages among en, ja, zh."""
    codes = str(direction).strip().split("-")
    if len(codes) != 2:
        raise DataError(f"{where}: {name} is not SOURCE-TARGET (got {direction!r}; e.g. ja-en)")
    return _direction(_language(codes[0], where, name), _language(codes[1], where, name), where)


def parse_pair(item: Mapping[str, Any], where: str, default_direction: str | None = None) -> TranslationPair:
    """A test pair; its direction from ``direction``, else ``source_lang``/``target_lang``, else the default."""
    source = _text(item, "source", where, required=True)
    reference = _text(item, "reference", where, required=True)
    if "direction" in item:
        source_lang, target_lang = parse_direction(_text(item, "direction", where, True), where)
    elif default_direction is not None and not {"source_lang", "target_lang"} & item.keys():
        source_lang, target_lang = parse_direction(default_direction, where, "eval.directions")
    else:
        codes = []
        for name in ("source_lang", "target_lang"):
            if name not in item:
                raise DataError(f"{where}: field '{name}' is missing (or give 'direction', e.g. ja-en)")
            codes.append(_language(_text(item, name, where, required=True), where, f"field '{name}'"))
        source_lang, target_lang = _direction(*codes, where)
    pair_id = item.get("id")
    pair_id = str(pair_id) if pair_id is not None else where.rsplit(": ", 1)[-1].replace(" ", "-")
    return TranslationPair(pair_id, source, reference, source_lang, target_lang)


def load_translation_pairs(
    path: str | Path,
    directions: Iterable[str] = (),
    max_per_direction: int | None = None,
    columns: Mapping[str, str] | None = None,
    split: str = "test",
    revision: str | None = None,
    subset: str | None = None,
) -> list[TranslationPair]:
    """Read and validate a translation test set (file, folder or Hub id), keeping the given directions (all when
    empty). A set without language fields takes the one direction ``directions`` names."""
    wanted = list(directions)
    for direction in wanted:
        parse_direction(direction, "eval.directions", f"direction {direction!r}")
    columns = dict(columns or {})
    formats.check_columns(columns, PAIR_FIELDS, "eval.columns")
    default = wanted[0] if len(wanted) == 1 else None
    pairs = [
        parse_pair(formats.map_columns(row, columns, where, "eval.columns"), where, default)
        for where, row in read_rows(Source(str(path), split, revision, subset))
    ]
    missing = set(wanted) - {pair.direction for pair in pairs}
    if missing:
        raise DataError(f"{path}: no test pairs for direction(s) {', '.join(sorted(missing))}")
    kept: list[TranslationPair] = []
    counts: dict[str, int] = {}
    for pair in pairs:
        if wanted and pair.direction not in wanted:
            continue
        if max_per_direction is not None and counts.get(pair.direction, 0) >= max_per_direction:
            continue
        counts[pair.direction] = counts.get(pair.direction, 0) + 1
        kept.append(pair)
    return kept


def split_records(records: list[Record], val_fraction: float, seed: int) -> tuple[list[Record], list[Record]]:
    """A seeded random split, for data that ships without a validation file."""
    if not 0.0 < val_fraction < 1.0:
        raise DataError(f"data.val_fraction must be between 0 and 1 when no val_files are given, got {val_fraction}")
    shuffled = list(records)
    random.Random(seed).shuffle(shuffled)
    n_val = max(1, round(len(shuffled) * val_fraction))
    return shuffled[n_val:], shuffled[:n_val]


def files_sha256(paths: Iterable[str | Path]) -> str:
    """One hash over the bytes of all files (those in a folder too, in name order), for the reproducibility record."""
    digest = hashlib.sha256()
    for path in map(resolve, paths):
        for file in sorted(path.rglob("*")) if path.is_dir() else [path]:
            if file.is_file():
                digest.update(file.read_bytes())
    return digest.hexdigest()
