"""Read back what a W&B run wrote: the records of an offline ``run-<id>.wandb`` file.

wandb 0.31 ships no reader (its writer is the Go ``wandb-core``). The file is a LevelDB-style log: a 7-byte header
(``:W&B``, magic 0xBEE1 little-endian, version 0), then 32 KiB blocks, counted from the start of the file. A block
holds chunks with a 7-byte header each: CRC-32 (``<I``, of the type byte and the data), data length (``<H``) and type
(``B``: 1 full, 2 first, 3 middle, 4 last); a block tail too short for a chunk header is zero padding. The data of a
full chunk, or of a first..last sequence, is one serialized ``wandb_internal_pb2.Record``.
"""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wandb.proto import wandb_internal_pb2 as pb

FILE_HEADER = struct.Struct("<4sHB")
CHUNK_HEADER = struct.Struct("<IHB")
BLOCK_SIZE = 32 * 1024
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def read_records(path: str | Path) -> list[pb.Record]:
    """Every record of a ``.wandb`` file, in order; raises ValueError on a bad header, CRC or chunk sequence."""
    data = Path(path).read_bytes()
    ident, magic, version = FILE_HEADER.unpack_from(data, 0)
    if (ident, magic, version) != (b":W&B", 0xBEE1, 0):
        raise ValueError(f"{path}: not a W&B transaction log (header {data[:7]!r})")
    records: list[pb.Record] = []
    pending: bytearray | None = None
    offset = FILE_HEADER.size
    while offset < len(data):
        block_left = BLOCK_SIZE - offset % BLOCK_SIZE
        if block_left < CHUNK_HEADER.size:  # padding at the end of a block
            offset += block_left
            continue
        if len(data) - offset < CHUNK_HEADER.size:
            raise ValueError(f"{path}: truncated chunk header at {offset}")
        crc, length, kind = CHUNK_HEADER.unpack_from(data, offset)
        start = offset + CHUNK_HEADER.size
        chunk = data[start : start + length]
        if length > block_left - CHUNK_HEADER.size or len(chunk) != length:
            raise ValueError(f"{path}: chunk at {offset} runs past its block or the file")
        if zlib.crc32(chunk, zlib.crc32(bytes([kind]))) != crc:
            raise ValueError(f"{path}: CRC mismatch in the chunk at {offset}")
        offset = start + length
        if kind == FULL and pending is None:
            records.append(_parse(chunk))
        elif kind == FIRST and pending is None:
            pending = bytearray(chunk)
        elif kind in (MIDDLE, LAST) and pending is not None:
            pending += chunk
            if kind == LAST:
                records.append(_parse(bytes(pending)))
                pending = None
        else:
            raise ValueError(f"{path}: chunk type {kind} out of sequence at {offset}")
    if pending is not None:
        raise ValueError(f"{path}: the last record is incomplete")
    return records


def _parse(data: bytes) -> pb.Record:
    record = pb.Record()
    record.ParseFromString(data)
    return record


def _key(item: Any) -> str:
    return "/".join(item.nested_key) if item.nested_key else item.key


@dataclass
class RunLog:
    """The parts of a run's records that tests look at, decoded from JSON."""

    group: str = ""
    tags: list[str] = field(default_factory=list)
    name: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    exit_code: int | None = None
    artifacts: list[pb.ArtifactRecord] = field(default_factory=list)

    def history_keys(self) -> set[str]:
        return {key for row in self.history for key in row}


def read_run(path: str | Path) -> RunLog:
    run = RunLog()
    for record in read_records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run.group, run.tags, run.name = record.run.run_group, list(record.run.tags), record.run.display_name
            run.config.update({_key(item): json.loads(item.value_json) for item in record.run.config.update})
        elif kind == "config":
            run.config.update({_key(item): json.loads(item.value_json) for item in record.config.update})
        elif kind == "history":
            run.history.append({_key(item): json.loads(item.value_json) for item in record.history.item})
        elif kind == "summary":
            run.summary.update({_key(item): json.loads(item.value_json) for item in record.summary.update})
        elif kind == "exit":
            run.exit_code = record.exit.exit_code
        elif kind == "artifact":
            run.artifacts.append(record.artifact)
    return run


def offline_runs(root: str | Path) -> list[Path]:
    """The ``.wandb`` files of the offline runs under ``root``, oldest first."""
    return sorted(Path(root).rglob("offline-run-*/run-*.wandb"))
