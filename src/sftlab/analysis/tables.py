"""Markdown tables of data frames, as the report and the design analysis write them."""

from __future__ import annotations

import math

import pandas as pd


def markdown_table(frame: pd.DataFrame) -> str:
    """A GitHub markdown table (no tabulate needed); ``|`` in cells is escaped."""
    header = [str(column) for column in frame.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for values in frame.itertuples(index=False):
        cells = ["" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v) for v in values]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


METRIC_LABELS = {"bleu": "BLEU", "chrf": "chrF", "chrf_pp": "chrF++"}
