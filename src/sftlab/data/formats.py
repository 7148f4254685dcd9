"""The record formats sftlab reads, and how a row of each becomes a row of the reasoning schema.

``reasoning`` is sftlab's own schema (the original recipe's ten fields, docs/dataset.md); ``alpaca`` has
instruction, optional input and output; ``sharegpt`` a ``conversations`` list of ``{from, value}`` turns;
``messages`` a list of ``{role, content}`` turns. A file's format is read off its first row unless
``data.format`` names it. The fields a format lacks are absent: every prompt part that shows them is left out.
Conversations train single-turn (an optional system turn, one user turn, one assistant turn), as the prompt formats
render one exchange.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sftlab.data.sources import DataError

REASONING_FIELDS = (
    "instruction",
    "input",
    "category",
    "language",
    "field",
    "keywords",
    "flag",
    "reasoning",
    "transformed_input",
    "output",
)
FORMATS = ("reasoning", "alpaca", "sharegpt", "messages")
# The schema fields each format carries; "system" is a conversation's own system message.
FORMAT_FIELDS = {
    "reasoning": frozenset(REASONING_FIELDS),
    "alpaca": frozenset({"instruction", "input", "output"}),
    "sharegpt": frozenset({"instruction", "output", "system"}),
    "messages": frozenset({"instruction", "output", "system"}),
}
TURN_KEYS = {"sharegpt": ("conversations", "from", "value"), "messages": ("messages", "role", "content")}
ROLES = {
    "system": "system",
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "model": "assistant",
}
MAPPABLE = frozenset({*REASONING_FIELDS, "system", "conversations", "messages"})


def absent_fields(fmt: str) -> list[str]:
    """The reasoning-schema fields a format does not carry."""
    return [name for name in REASONING_FIELDS if name not in FORMAT_FIELDS[fmt]]


def check_columns(columns: Mapping[str, str], allowed: frozenset[str] = MAPPABLE, key: str = "data.columns") -> None:
    """A column mapping may only name fields of the schema it maps onto."""
    unknown = sorted(set(columns) - allowed)
    if unknown:
        expected = ", ".join(sorted(allowed))
        raise DataError(f"{key}: unknown field(s) {', '.join(unknown)} (expected some of: {expected})")


def map_columns(row: dict[str, Any], columns: Mapping[str, str], where: str, key: str = "data.columns") -> dict:
    """The row with the user's column names (``columns``: schema field -> column) renamed to the schema's."""
    if not columns:
        return row
    mapped = {name: value for name, value in row.items() if name not in columns.values()}
    for name, column in columns.items():
        if column not in row:
            raise DataError(f"{where}: field '{column}' is missing ({key}.{name} names it)")
        mapped[name] = row[column]
    return mapped


def detect(row: Mapping[str, Any], where: str) -> str:
    """The format a row is in: any field only the reasoning schema has makes it a reasoning record."""
    if any(name in row for name in REASONING_FIELDS if name not in FORMAT_FIELDS["alpaca"]):
        return "reasoning"
    if "conversations" in row:
        return "sharegpt"
    if "messages" in row:
        return "messages"
    if "instruction" in row or "output" in row:
        return "alpaca"
    fields = ", ".join(sorted(map(str, row))) or "none"
    raise DataError(
        f"{where}: not a known record format (fields: {fields}); expected the reasoning schema, alpaca "
        "(instruction, input, output), sharegpt (conversations) or messages; data.columns maps other names"
    )


def conversation(row: Mapping[str, Any], fmt: str, where: str) -> dict[str, Any]:
    """A single-turn conversation as schema fields: the user turn is the instruction, the answer the output."""
    key, role_key, text_key = TURN_KEYS[fmt]
    turns = row.get(key)
    if not isinstance(turns, list) or not turns:
        raise DataError(f"{where}: field '{key}' must be a non-empty list of turns")
    by_role: dict[str, Any] = {}
    order = []
    for index, turn in enumerate(turns):
        if not isinstance(turn, Mapping) or role_key not in turn or text_key not in turn:
            raise DataError(f"{where}: field '{key}[{index}]' must be an object with '{role_key}' and '{text_key}'")
        role = ROLES.get(str(turn[role_key]))
        if role is None:
            raise DataError(
                f"{where}: field '{key}[{index}].{role_key}' has unknown role {turn[role_key]!r} "
                f"(expected one of: {', '.join(ROLES)})"
            )
        if role in by_role:
            raise DataError(
                f"{where}: field '{key}' has more than one {role} turn: sftlab trains single-turn "
                "(an optional system turn, one user turn, one assistant turn)"
            )
        by_role[role] = turn[text_key]
        order.append(role)
    if order not in (["user", "assistant"], ["system", "user", "assistant"]):
        raise DataError(
            f"{where}: field '{key}' has turns {' -> '.join(order)}; expected [system ->] user -> assistant"
        )
    return {"instruction": by_role["user"], "output": by_role["assistant"], "system": by_role.get("system", "")}
