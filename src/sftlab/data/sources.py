"""Where records come from: files, folders and Hub datasets, read as rows ``(where, object)`` in order.

JSON and JSONL files are parsed here with the json module: a mistake must come back as one line naming the file and
the line (JSONL) or index (JSON array), which pyarrow's errors do not, and one file may mix a keywords string with a
keywords list, which Arrow's one type per column does not allow. CSV, Parquet and Arrow files, folders (a dataset
repository's layout, split by file name, or a ``save_to_disk`` folder) and Hub ids go through ``datasets``.

A relative path resolves against the directory the command was run from (Hydra keeps it, or remembers it when a
job changes directory); messages show the path as the user gave it.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig

from sftlab.errors import SftlabError

JSON_SUFFIXES = (".json", ".jsonl")
BUILDERS = {".csv": "csv", ".tsv": "csv", ".parquet": "parquet", ".arrow": "arrow"}
HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


class DataError(SftlabError):
    """A data file that cannot be used; the message names file, record and field."""


@dataclass(frozen=True)
class Source:
    """One configured entry: a file, a folder or a Hub id; a folder or an id is read at ``split``."""

    entry: str
    split: str = "train"
    revision: str | None = None  # a Hub id's branch, tag or commit
    subset: str | None = None  # a Hub dataset's configuration name


def launch_dir() -> Path:
    """The directory the command was run from."""
    if HydraConfig.initialized():
        return Path(HydraConfig.get().runtime.cwd)
    return Path.cwd()


def resolve(entry: str | Path) -> Path:
    path = Path(entry).expanduser()
    return path if path.is_absolute() else launch_dir() / path


def read_rows(source: Source) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every row of a source as ``(where, object)``: ``"<entry>: line N"`` (JSONL) or ``"<entry>: record N"``."""
    path = resolve(source.entry)
    shown = source.entry
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix in JSON_SUFFIXES:
            yield from read_json_objects(path, shown)
        elif suffix in BUILDERS:
            yield from _rows(_load_file(path, suffix, shown), shown)
        else:
            known = ", ".join((*JSON_SUFFIXES, *BUILDERS))
            raise DataError(f"{shown}: cannot read '{suffix or path.name}' files (expected one of: {known})")
    elif path.is_dir():
        yield from _rows(_load_folder(path, source), f"{shown} [{source.split}]")
    elif HUB_ID.match(source.entry) and Path(source.entry).suffix.lower() not in (*JSON_SUFFIXES, *BUILDERS):
        yield from _rows(_load_hub(source), f"{shown} [{source.split}]")
    else:
        where = "" if Path(source.entry).expanduser().is_absolute() else f" (relative to {launch_dir()})"
        raise DataError(f"{shown}: no such file or folder{where}")


def read_json_objects(path: str | Path, shown: str | None = None) -> Iterator[tuple[str, dict[str, Any]]]:
    """Each object of a JSONL file or a JSON array file, one pass over the text."""
    path = Path(path)
    shown = str(path) if shown is None else shown
    if not path.is_file():
        raise DataError(f"{shown}: no such file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise DataError(f"{shown}: not UTF-8 text (byte {error.start} is {error.object[error.start]:#04x})") from None
    if not text.strip():
        raise DataError(f"{shown}: the file is empty")
    if text.lstrip().startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as error:
            raise DataError(f"{shown}: line {error.lineno}: invalid JSON ({error.msg})") from None
        for index, item in enumerate(items):
            yield _as_object(item, f"{shown}: record {index}")
        return
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataError(f"{shown}: line {number}: invalid JSON ({error.msg})") from None
        yield _as_object(item, f"{shown}: line {number}")


def _as_object(item: Any, where: str) -> tuple[str, dict[str, Any]]:
    if not isinstance(item, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(item).__name__}")
    return where, item


def _rows(dataset: Any, shown: str) -> Iterator[tuple[str, dict[str, Any]]]:
    if len(dataset) == 0:
        raise DataError(f"{shown}: no records")
    for index, row in enumerate(dataset.to_list()):
        yield f"{shown}: record {index}", row


def _first_line(error: BaseException) -> str:
    cause = error.__cause__ or error
    lines = [line for line in str(cause).splitlines() if line.strip()]
    return lines[0] if lines else type(cause).__name__


def _load_file(path: Path, suffix: str, shown: str) -> Any:
    """One CSV, Parquet or Arrow file through its ``datasets`` builder; CSV cells stay strings (no 42 -> int)."""
    import datasets

    options: dict[str, Any] = {}
    if BUILDERS[suffix] == "csv":
        separator = "\t" if suffix == ".tsv" else ","
        try:
            with path.open(encoding="utf-8-sig", newline="") as handle:
                header = next(csv.reader(handle, delimiter=separator), None)
        except UnicodeDecodeError as error:
            raise DataError(f"{shown}: not UTF-8 text ({error.reason} at byte {error.start})") from None
        if not header:
            raise DataError(f"{shown}: the file is empty")
        features = datasets.Features({name: datasets.Value("string") for name in header})
        options = {"sep": separator, "keep_default_na": False, "features": features}
    try:
        return datasets.load_dataset(BUILDERS[suffix], data_files=str(path), split="train", **options)
    except Exception as error:  # datasets and pyarrow raise many types; the user gets one line
        raise DataError(f"{shown}: cannot read it as {suffix[1:]}: {_first_line(error)}") from None


def _load_folder(path: Path, source: Source) -> Any:
    """A ``save_to_disk`` folder, or a dataset repository's layout (files named by split) through ``load_dataset``."""
    import datasets

    try:
        if (path / "dataset_dict.json").is_file() or (path / "state.json").is_file():
            loaded = datasets.load_from_disk(str(path))
            if isinstance(loaded, datasets.DatasetDict):
                if source.split not in loaded:
                    raise DataError(f"{source.entry}: no split '{source.split}' (it has: {', '.join(loaded)})")
                return loaded[source.split]
            return loaded
        return datasets.load_dataset(str(path), name=source.subset, split=source.split)
    except DataError:
        raise
    except Exception as error:
        raise DataError(f"{source.entry}: cannot load split '{source.split}': {_first_line(error)}") from None


def _load_hub(source: Source) -> Any:
    import datasets

    try:
        return datasets.load_dataset(source.entry, name=source.subset, split=source.split, revision=source.revision)
    except Exception as error:
        revision = f", revision {source.revision}" if source.revision else ""
        raise DataError(
            f"{source.entry}: not a file or folder here ({launch_dir()}), and as a Hub dataset (split "
            f"{source.split}{revision}) it cannot be loaded: {_first_line(error)}"
        ) from None
