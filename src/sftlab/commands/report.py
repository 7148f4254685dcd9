"""``python -m sftlab.report MULTIRUN_DIR``: the report of one multirun (see ``sftlab.analysis.report``).

python -m sftlab.report multirun/2026-11-26/10-00-00
python -m sftlab.report multirun/2026-11-26/10-00-00 --baseline alpaca --metric bleu --resamples 2000
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from sftlab.analysis.render import NO_SCORES, counts_line, sweep_cells
from sftlab.analysis.report import DEFAULT_BASELINE, Report, ScoreAnalysis, build_report
from sftlab.analysis.runs import missing_reason
from sftlab.analysis.tables import METRIC_LABELS, cell
from sftlab.analysis.write import write_report
from sftlab.errors import SftlabError
from sftlab.objectives import SCORES


def scores_table(scores: ScoreAnalysis) -> Any:
    """The macro score of each system and its verdicts against the baseline."""
    from rich.table import Table
    from rich.text import Text

    label = METRIC_LABELS[scores.metric]
    table = Table(title=f"macro {label} by system (baseline {scores.baseline})")
    for column in ("system", "runs", f"macro {label}", "vs baseline (directions)"):
        table.add_column(column, justify="left" if column == "system" else "right")
    macro = scores.summary[scores.summary["direction"] == "macro"]
    for _, row in macro.iterrows():
        outcomes = scores.outcomes[scores.outcomes["system"] == row["system"]] if not scores.outcomes.empty else None
        if row["format"] == scores.baseline:
            against = "baseline"
        elif outcomes is None or outcomes.empty:
            against = "not tested"
        else:
            against = ", ".join(f"{count} {name}" for name, count in Counter(outcomes["verdict"]).items())
        score = cell(row[f"{scores.metric}_mean"], row[f"{scores.metric}_std"], False)
        table.add_row(Text(row["system"]), str(row["runs"]), score, against)  # Text: "[lora.r=8]" is no markup
    return table


def objectives_table(report: Report) -> Any:
    """The sweep table, for a multirun without translation scores: every run's objectives, best first."""
    from rich.table import Table
    from rich.text import Text

    assert report.sweep is not None  # a report without scores always has its sweep table
    cells = sweep_cells(report.sweep, report.objectives)
    table = Table(title=f"{', '.join(report.objectives)} by run (best first by {report.objectives[0]})")
    for column in cells.columns:
        table.add_column(str(column), justify="left" if column in ("job", "format") else "right")
    for row in cells.itertuples(index=False):
        table.add_row(*(Text(text) for text in row))  # Text: a value is no markup
    return table


def print_summary(report: Report, written: list[Path]) -> None:
    from rich.console import Console

    console = Console(highlight=False)
    console.print(scores_table(report.scores) if report.scores is not None else objectives_table(report))
    lines = [counts_line(report)] + ([] if report.scores is not None else [NO_SCORES])
    lines += [
        f"  failed: job {job.name} ({job.format}): {(job.failure or {}).get('message', '?')}" for job in report.failed
    ]
    lines += [f"  missing: job {job.name} ({job.format}): {missing_reason(job)}" for job in report.missing]
    lines.append("written: " + ", ".join(str(path) for path in written))
    for line in lines:
        console.print(line, markup=False)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m sftlab.report",
        description="Compare the prompt formats (and sweep trials) of one multirun: report.md, report.csv, plots.",
    )
    parser.add_argument("sweep_dir", type=Path, help="a Hydra multirun (or Optuna sweep) dir with job dirs 0/, 1/, ...")
    parser.add_argument("--baseline", help=f"prompt format to test against (default {DEFAULT_BASELINE} if present)")
    parser.add_argument("--metric", default="chrf", choices=SCORES, help="score to rank, test and plot (chrf)")
    parser.add_argument("--resamples", type=int, help="bootstrap resamples (default: eval.bootstrap_resamples)")
    parser.add_argument("--test-set", help="sha256 prefix: report only the runs scored on that test set")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        report = build_report(args.sweep_dir, args.baseline, args.metric, args.resamples, args.test_set)
        written = write_report(report)
    except SftlabError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except OSError as error:  # e.g. a read-only multirun dir
        print(f"error: cannot write the report: {error}", file=sys.stderr)
        return 1
    print_summary(report, written)
    return 0


if __name__ == "__main__":
    sys.exit(main())
