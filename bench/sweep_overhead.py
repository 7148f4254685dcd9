"""Per-trial overhead of an Optuna sweep: everything a trial costs besides training and translation evaluation.

    python bench/sweep_overhead.py [--trials 5] [--keep DIR]

Runs ``python -m sftlab.train -m hparams_search=lora_lr_seq`` on the tiny random model (a few steps, a few test
pairs), then reads the study and the run dirs back:

- ``trial``: the trial's wall time in the study (``datetime_start`` at ``ask`` to ``datetime_complete`` at ``tell``)
- ``train``: ``metrics.json`` ``train_runtime_s`` (the training loop, its evaluation losses included)
- ``eval``: ``eval.json``'s mtime minus ``metrics.json``'s (generation and scoring)
- ``before``: trial start to training start: job config composition, data loading, base model (cached after the
  first trial), LoRA adapter, tokenization (cached per max_seq_length), trainer construction
- ``after``: evaluation end to ``tell``: summary, adapter release, the sweeper's bookkeeping
- ``overhead`` = trial - train - eval; ``gap``: this trial's ``tell`` to the next trial's ``ask`` (the sampler)

Trial 0 pays for the process's imports and the first model load; the later rows are the steady per-trial cost.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import optuna

ROOT = Path(__file__).resolve().parents[1]

TINY_SWEEP = [
    "model=tiny_random",
    "experiment=cpu_quick",
    "trainer.max_steps=4",
    "trainer.eval_steps=2",
    "trainer.eval_on_start=false",
    "trainer.save_steps=0",
    "eval.max_pairs_per_direction=2",
    "eval.max_new_tokens=8",
    "data.max_train_records=48",
    "data.max_val_records=8",
    "logger=none",
    "trainer.max_seq_length=choice(1024,2048)",  # the tiny byte-level tokenizer drops most prompts at 512
]


def mtime(path: Path) -> datetime | None:
    return datetime.fromtimestamp(path.stat().st_mtime) if path.is_file() else None


def seconds(later: datetime | None, earlier: datetime | None) -> float | None:
    return (later - earlier).total_seconds() if later and earlier else None


def rows(sweep_dir: Path) -> list[dict]:
    study = optuna.load_study(study_name="lora_lr_seq", storage=f"sqlite:///{sweep_dir / 'optuna.db'}")
    trials = sorted(study.trials, key=lambda t: t.number)
    table = []
    for index, trial in enumerate(trials):
        run_dir = Path(trial.user_attrs.get("run_dir", sweep_dir / str(trial.number)))
        metrics_path = run_dir / "metrics.json"
        train = None
        if metrics_path.is_file():
            train = json.loads(metrics_path.read_text())["train_runtime_s"]
        trained_at, evaluated_at = mtime(metrics_path), mtime(run_dir / "eval.json")
        total = seconds(trial.datetime_complete, trial.datetime_start)
        evaluation = seconds(evaluated_at, trained_at)
        following = trials[index + 1] if index + 1 < len(trials) else None
        train_start = (
            datetime.fromtimestamp(trained_at.timestamp() - train) if trained_at and train is not None else None
        )
        table.append(
            {
                "trial": trial.number,
                "state": trial.state.name,
                "params": trial.params,
                "total": total,
                "train": train,
                "eval": evaluation,
                "before": seconds(train_start, trial.datetime_start),
                "after": seconds(trial.datetime_complete, evaluated_at),
                "overhead": total - train - evaluation if None not in (total, train, evaluation) else None,
                "gap": seconds(following.datetime_start, trial.datetime_complete) if following else None,
            }
        )
    return table


def show(table: list[dict]) -> None:
    columns = ("trial", "total", "train", "eval", "overhead", "before", "after", "gap")
    print(" ".join(f"{c:>9}" for c in columns) + "  state     params")
    for row in table:
        cells = [f"{row['trial']:>9}"] + [
            f"{row[c]:>8.2f}s" if row[c] is not None else f"{'-':>9}" for c in columns[1:]
        ]
        print(" ".join(cells) + f"  {row['state']:<9} {row['params']}")
    steady = [row["overhead"] for row in table[1:] if row["overhead"] is not None]
    if steady:
        print(f"steady per-trial overhead (trials 1+): mean {sum(steady) / len(steady):.2f}s, max {max(steady):.2f}s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--keep", type=Path, help="sweep dir to use and keep (default: a temporary one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sweep_overhead_") as scratch:
        sweep_dir = (args.keep or Path(scratch) / "sweep").absolute()
        command = [
            sys.executable,
            "-m",
            "sftlab.train",
            "-m",
            "hparams_search=lora_lr_seq",
            *TINY_SWEEP,
            f"hydra.sweeper.n_trials={args.trials}",
            f"hydra.sweep.dir={sweep_dir}",
        ]
        started = time.perf_counter()
        result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env={**os.environ})
        wall = time.perf_counter() - started
        if result.returncode != 0:
            sys.exit(f"sweep failed ({result.returncode}):\n{result.stderr[-3000:]}")
        print(f"{args.trials} trials in {wall:.1f}s (process wall time, imports included); sweep dir {sweep_dir}")
        show(rows(sweep_dir))


if __name__ == "__main__":
    main()
