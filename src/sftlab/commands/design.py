"""``python -m sftlab.design``: show a factorial design, or confirm the predicted best combination of a finished one.

    python -m sftlab.design show l8                      # rows, generators, alias chains
    python -m sftlab.design confirm <sweep dir> [--run]  # print (and run) the confirmation training, then compare

``confirm`` trains through ``python -m sftlab.train`` in a subprocess, one run per seed, and compares the measured
objective and S/N ratio with the design analysis's predictions (``sftlab.analysis.design_stats``). ``--metric``
picks the translation score whose per-direction values the S/N ratio takes, in the design's rows and in the
confirmation runs alike (default: the objective when it is a score, else the objective itself).
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np

from sftlab import rundir
from sftlab.analysis.design_stats import DesignAnalysis, analyse, levels_text, signal_to_noise
from sftlab.analysis.runs import Job, find_jobs, load_job, objective_of
from sftlab.designs.factorial import DesignError, build
from sftlab.errors import SftlabError
from sftlab.objectives import SCORES


def _show(name: str) -> int:
    import yaml

    path = Path(name)
    if not path.is_file():
        path = Path(__file__).resolve().parents[3] / "conf" / "design" / f"{name}.yaml"
    if not path.is_file():
        print(f"error: no design {name!r} (a conf/design/<name>.yaml or a YAML path)", file=sys.stderr)
        return 1
    spec = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("hydra", {}).get("sweeper", {}).get("design")
    if not spec:
        print(f"error: {path} has no hydra.sweeper.design node", file=sys.stderr)
        return 1
    design = build(spec)
    print("\n".join(design.describe()))
    print()
    print("run  " + "  ".join(design.factors))
    for i, row in enumerate(design.matrix):
        print(
            f"{i:>3}  "
            + "  ".join(f"{'+' if v > 0 else '-':>{len(f)}}" for f, v in zip(design.factors, row, strict=True))
        )
    return 0


def seed_list(text: str) -> list[int]:
    try:
        return [int(seed) for seed in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sftlab.design",
        description="Show a factorial design; confirm the best combination of a finished one.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    show = commands.add_parser("show", help="print a design of conf/design/ (rows, resolution, aliases)")
    show.add_argument("name", help="l8, l12, l16, full, fractional, or a YAML path")
    confirming = commands.add_parser("confirm", help="train the predicted best combination of a finished design")
    confirming.add_argument("sweep_dir", type=Path)
    confirming.add_argument("--run", action="store_true", help="run it (else print the command) and compare")
    confirming.add_argument(
        "--metric", choices=SCORES, help="score for the S/N ratio (default: the objective when a score, else itself)"
    )
    confirming.add_argument(
        "--seeds", type=seed_list, help="comma-separated seeds for the confirmation runs (default: the design's)"
    )
    args = parser.parse_args(argv)
    try:
        if args.command == "show":
            return _show(args.name)
        return confirm(args.sweep_dir, run=args.run, metric=args.metric, seeds=args.seeds)
    except (DesignError, SftlabError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


DROP_FROM_CONFIRM = ("design", "hparams_search", "seed")


def confirm_commands(analysis: DesignAnalysis, seeds: list[int]) -> list[list[str]]:
    """One ``python -m sftlab.train`` command per seed: the design's fixed overrides, the best levels."""
    jobs = find_jobs(analysis.sweep_dir)
    first = next((job for job in jobs if job.name in set(analysis.runs["job"])), jobs[0])
    keys = {f"{analysis.prefix}.{f}" for f in (analysis.design.factors if analysis.design else analysis.factors)}
    base = []
    for line in first.overrides:
        key = line.split("=", 1)[0].lstrip("+~")
        if key in keys or key in DROP_FROM_CONFIRM or key.startswith("hydra"):
            continue
        base.append(line)
    best = [f"{analysis.prefix}.{factor}={str(level).lower()}" for factor, level in analysis.best.items()]
    out = analysis.sweep_dir / rundir.DESIGN_CONFIRM_DIR
    return [
        [sys.executable, "-m", "sftlab.train", *base, *best, f"seed={seed}", f"hydra.run.dir={out / f'seed_{seed}'}"]
        for seed in seeds
    ]


def confirm(sweep_dir: Path, run: bool = False, metric: str | None = None, seeds: list[int] | None = None) -> int:
    """Print (and with ``run``, run) the predicted best combination; compare measured with predicted.

    ``metric``: the score whose per-direction values the S/N ratio takes (see ``design_stats.analyse``)."""
    analysis = analyse(Path(sweep_dir), sn_metric=metric)
    if analysis is None:
        print(f"error: {sweep_dir}: no design (no design.json and no varying prompt components)", file=sys.stderr)
        return 1
    seeds = seeds or [int(s) for s in (analysis.design_json or {}).get("seeds") or sorted(set(analysis.runs["seed"]))]
    commands = confirm_commands(analysis, seeds)
    interval = analysis.confirmation_interval(len(seeds))
    band = "" if interval is None else f" ± {interval:.3f} (95% confirmation interval, {len(seeds)} run(s))"
    print(f"predicted best: {levels_text(analysis.best)}")
    print(f"predicted {analysis.objective}: {analysis.predicted:.4f}{band}")
    print(f"predicted S/N: {analysis.predicted_sn:.2f} dB ({sn_kind(analysis)}, {analysis.sn_source})")
    for command in commands:
        print(" ".join(shlex.quote(part) for part in ["python", *command[1:]]))
    if not run:
        return 0
    runs = run_confirmation(commands)
    if runs is None:
        return 1
    return judge(analysis, runs, interval)


def run_confirmation(commands: list[list[str]]) -> list[tuple[Job, float]] | None:
    """Each confirmation run as the report reads it, with its objective (the first of several); None when one
    failed."""
    runs = []
    for command in commands:
        result = subprocess.run(command, check=False)
        run_dir = Path(command[-1].split("=", 1)[1])
        job = load_job(run_dir)
        _, value = objective_of(job)
        if result.returncode != 0 or value is None:
            print(f"error: confirmation run {run_dir} failed (exit {result.returncode})", file=sys.stderr)
            return None
        runs.append((job, value))
    return runs


def sn_kind(analysis: DesignAnalysis) -> str:
    return "larger-the-better" if analysis.sn_maximize else "smaller-the-better"


def judge(analysis: DesignAnalysis, runs: list[tuple[Job, float]], interval: float | None) -> int:
    """Measured against predicted, the objective (within the confirmation interval, the additive model holds) and
    the S/N ratio; written to confirm.json. 1 when a run lacks the values its S/N needs."""
    values = [value for _, value in runs]
    sn_values = [analysis.sn_values(job) for job, _ in runs]
    if not all(sn_values):
        print(f"error: a confirmation run has no per-direction {analysis.sn_metric} for the S/N", file=sys.stderr)
        return 1
    measured = float(np.mean(values))
    measured_sn = signal_to_noise([v for run in sn_values for v in run], analysis.sn_maximize)
    print(
        f"measured {analysis.objective}: {measured:.4f} over {len(values)} run(s) (predicted {analysis.predicted:.4f})"
    )
    print(f"measured S/N: {measured_sn:.2f} dB (predicted {analysis.predicted_sn:.2f} dB)")
    if interval is None:
        print("no confirmation interval (no error degrees of freedom): compare by eye")
    elif abs(measured - analysis.predicted) <= interval:
        print("confirmed: the measured value lies within the confirmation interval (the additive model holds)")
    else:
        print("NOT confirmed: outside the confirmation interval (interactions, or a noisy estimate)")
    rundir.write_json(
        analysis.sweep_dir / rundir.DESIGN_CONFIRM_DIR / rundir.DESIGN_CONFIRM,
        {
            "best": analysis.best,
            "predicted": analysis.predicted,
            "interval": interval,
            "measured": values,
            "sn_metric": analysis.sn_metric,
            "predicted_sn": analysis.predicted_sn,
            "measured_sn": measured_sn,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
