"""The run-dir contract: the file names that train, evaluate, the sweeper and the report agree on.

A run dir (Hydra's output dir of one job) holds:
``.hydra/config.yaml`` (Hydra's), ``adapter/`` (PEFT format + tokenizer), ``metrics.json`` (training),
``predictions.jsonl`` and ``eval.json`` (translation evaluation), ``run.json`` (reproducibility record), and
``failure.json`` when the job stopped on an error. Under a DDP launch rank 0 writes all of them; the other ranks
add only Hydra's log, ``<job>.rank<N>.log``.

A sweep dir (Hydra's multirun dir) holds the jobs' run dirs ``0/``, ``1/``, ... and, from the Optuna sweeper,
the files named by the ``SWEEP_*`` constants.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HYDRA_CONFIG = ".hydra/config.yaml"
HYDRA_OVERRIDES = ".hydra/overrides.yaml"
ADAPTER = "adapter"
CHECKPOINTS = "checkpoints"
METRICS = "metrics.json"
PREDICTIONS = "predictions.jsonl"
EVAL = "eval.json"
RUN = "run.json"
FAILURE = "failure.json"

SWEEP_RESULTS = "optimization_results.yaml"
SWEEP_TRIALS = "trials.csv"
SWEEP_HISTORY_PLOT = "optimization_history.png"
SWEEP_IMPORTANCE_PLOT = "param_importances.png"
SWEEP_BEST_OVERRIDES = "best_overrides.yaml"
SWEEP_PARETO = "pareto_front.csv"  # a multi-objective sweep's non-dominated trials
SWEEP_PARETO_PLOT = "pareto_front.png"
SWEEP_DESIGN = "design.json"


def write_json(path: str | Path, value: Any) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_suffix(path.suffix + ".tmp")
    scratch.write_text(json.dumps(value, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    scratch.replace(path)
    return path


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def write_jsonl(path: str | Path, rows: list[dict[str, Any]]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    with Path(path).open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]
