"""Reasoning-SFT records and translation test pairs: reading, validation and the train/validation split.

Files are parsed with the json module and validated by hand, not through ``datasets.load_dataset``: a user's
mistake must come back as one line naming the file, the record (JSONL line or JSON-array index) and the field,
which pyarrow's errors do not. The training code turns the validated records into a ``datasets.Dataset``.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sftlab.errors import SftlabError

LANGUAGES = ("English", "Japanese", "Chinese")
LANGUAGE_CODES = {"en": "English", "ja": "Japanese", "zh": "Chinese"}
FLAGS = ("AI assistant", "creator", "logician", "translator")
CATEGORIES = ("open_qa", "closed_qa", "classification", "creative", "translation", "reasoning", "brainstorm")

_REQUIRED_TEXT = ("instruction", "category", "language", "field", "flag", "reasoning", "output")
_OPTIONAL_TEXT = ("input", "transformed_input")
_ENUMS = {"category": CATEGORIES, "language": LANGUAGES, "flag": FLAGS}


class DataError(SftlabError):
    """A data file that cannot be used; the message names file, record and field."""


@dataclass(frozen=True)
class Record:
    """One reasoning-SFT example (see docs/dataset.md)."""

    instruction: str
    input: str
    category: str
    language: str
    field: str
    keywords: tuple[str, ...]
    flag: str
    reasoning: str
    transformed_input: str
    output: str

    def as_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values["keywords"] = list(self.keywords)
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


def read_json_objects(path: str | Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield ``(where, object)`` for each object of a JSONL file or a JSON array file.

    ``where`` reads ``"<file>: line N"`` (JSONL) or ``"<file>: record N"`` (0-based array index).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise DataError(f"{path}: not UTF-8 text (byte {error.start} is {error.object[error.start]:#04x})") from None
    if not text.strip():
        raise DataError(f"{path}: the file is empty")
    if text.lstrip().startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as error:
            raise DataError(f"{path}: line {error.lineno}: invalid JSON ({error.msg})") from None
        for index, item in enumerate(items):
            yield _as_object(item, f"{path}: record {index}")
        return
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataError(f"{path}: line {number}: invalid JSON ({error.msg})") from None
        yield _as_object(item, f"{path}: line {number}")


def _as_object(item: Any, where: str) -> tuple[str, dict[str, Any]]:
    if not isinstance(item, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(item).__name__}")
    return where, item


def _text(item: dict[str, Any], name: str, where: str, required: bool) -> str:
    if name not in item:
        raise DataError(f"{where}: field '{name}' is missing")
    value = item[name]
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise DataError(f"{where}: field '{name}' must be a string, got {type(value).__name__}")
    if required and not value.strip():
        raise DataError(f"{where}: field '{name}' is empty")
    return value.strip()


def _keywords(item: dict[str, Any], where: str) -> tuple[str, ...]:
    if "keywords" not in item:
        raise DataError(f"{where}: field 'keywords' is missing")
    value = item["keywords"]
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    if isinstance(value, list) and all(isinstance(part, str) for part in value):
        return tuple(part.strip() for part in value if part.strip())
    raise DataError(f"{where}: field 'keywords' must be a list of strings or a comma-separated string")


def parse_record(item: dict[str, Any], where: str) -> Record:
    values: dict[str, Any] = {name: _text(item, name, where, required=True) for name in _REQUIRED_TEXT}
    values.update({name: _text(item, name, where, required=False) for name in _OPTIONAL_TEXT})
    for name, allowed in _ENUMS.items():
        if values[name] not in allowed:
            raise DataError(
                f"{where}: field '{name}' has unknown value {values[name]!r} (expected one of: {', '.join(allowed)})"
            )
    values["keywords"] = _keywords(item, where)
    return Record(**values)


def load_records(paths: Iterable[str | Path]) -> list[Record]:
    """Read and validate every record of the given files, in order."""
    paths = list(paths)
    if not paths:
        raise DataError("no data files configured (data.train_files is empty)")
    return [parse_record(item, where) for path in paths for where, item in read_json_objects(path)]


def parse_pair(item: dict[str, Any], where: str) -> TranslationPair:
    values = {name: _text(item, name, where, required=True) for name in ("source", "reference")}
    for name in ("source_lang", "target_lang"):
        code = _text(item, name, where, required=True)
        if code not in LANGUAGE_CODES:
            raise DataError(
                f"{where}: field '{name}' has unknown language code {code!r} "
                f"(expected one of: {', '.join(LANGUAGE_CODES)})"
            )
        values[name] = code
    pair_id = item.get("id")
    values["id"] = str(pair_id) if pair_id is not None else where.rsplit(": ", 1)[-1].replace(" ", "-")
    return TranslationPair(**values)


def load_translation_pairs(
    path: str | Path, directions: Iterable[str] = (), max_per_direction: int | None = None
) -> list[TranslationPair]:
    """Read and validate a translation test file, keeping the given directions (all when empty)."""
    pairs = [parse_pair(item, where) for where, item in read_json_objects(path)]
    wanted = set(directions)
    missing = wanted - {pair.direction for pair in pairs}
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
    """One hash over the bytes of all files, for the reproducibility record."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(Path(path).read_bytes())
    return digest.hexdigest()
