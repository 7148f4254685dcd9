"""The run-dir contract: every file name of a run dir and a sweep dir, and the typed records written there.

Training, evaluation, the commands, the sweeper and the report agree on these names and records; each JSON record
is a dataclass with ``to_json`` / ``from_json``, written and read through :func:`write_record` / :func:`read_record`.
The JSON keys are the field names, so a file stays readable by any JSON tool (W&B, pandas, jq). Reading ignores keys
a newer sftlab added, and a field a run dir written by an older one lacks takes its default.

A run dir (Hydra's output dir of one job) holds:
``.hydra/config.yaml`` (Hydra's), ``adapter/`` (PEFT format + tokenizer), ``metrics.json`` (training),
``predictions.jsonl`` and ``eval.json`` (translation evaluation), ``run.json`` (reproducibility record), and
``failure.json`` when the job stopped on an error. Under a DDP launch rank 0 writes all of them; the other ranks
add only Hydra's log, ``<job>.rank<N>.log``.

A sweep dir (Hydra's multirun dir) holds the jobs' run dirs ``0/``, ``1/``, ... and, from the Optuna sweeper,
the files named by the ``SWEEP_*`` constants.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

HYDRA_CONFIG = ".hydra/config.yaml"
HYDRA_OVERRIDES = ".hydra/overrides.yaml"
HYDRA_SETTINGS = ".hydra/hydra.yaml"  # Hydra's own config: hydra.runtime.choices names each group's choice
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

# The report's files in a sweep dir (python -m sftlab.report); the plot names are templates.
REPORT_MD = "report.md"
REPORT_CSV = "report.csv"  # scores per system x direction
SIGNIFICANCE_CSV = "significance.csv"  # one row per paired test
REPORT_FORMAT_PLOT = "{metric}_by_format.png"
REPORT_OBJECTIVE_PLOT = "objective_vs_{param}.png"  # the objectives against one varying parameter
REPORT_PARETO_PLOT = "objectives_pareto.png"  # the first two objectives of a multi-objective multirun, front drawn
# The factorial-design analysis (with the report) and its confirmation runs (python -m sftlab.design confirm).
DESIGN_EFFECTS_CSV = "design_effects.csv"
DESIGN_ANOVA_CSV = "design_anova.csv"
DESIGN_SN_CSV = "design_sn.csv"
DESIGN_EFFECTS_PLOT = "design_main_effects.png"
DESIGN_CONFIRM_DIR = "confirm"  # one run dir per seed, seed_<n>/, and confirm.json
DESIGN_CONFIRM = "confirm.json"


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


# ---------------------------------------------------------------------------------------------------- records

Record = TypeVar("Record", bound="JsonRecord")


@dataclass
class JsonRecord:
    """A dataclass written as one JSON object; nested records convert through their own ``from_json``."""

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls: type[Record], data: dict[str, Any]) -> Record:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})


@dataclass
class SplitSummary(JsonRecord):
    records: int
    truncated: int  # records cut at max_seq_length
    dropped: int  # records whose prompt alone filled max_seq_length
    tokens: int


@dataclass
class Metrics(JsonRecord):
    """``metrics.json``: what training did and cost."""

    train_loss: float
    steps: int
    epochs: float
    train_runtime_s: float
    train_tokens: int  # every rank's tokens under DDP
    peak_memory_gib: float
    peak_memory_kind: str  # cuda_allocated | cpu_rss
    backend: str
    precision: str
    train_split: SplitSummary
    first_train_loss: float | None = None
    last_train_loss: float | None = None
    eval_loss: float | None = None
    world_size: int = 1
    effective_batch_size: int = 0
    tokens_per_second: float | None = None
    steady_tokens_per_second: float | None = None
    validation_split: SplitSummary | None = None
    train_loss_history: list[tuple[int, float]] = field(default_factory=list)
    eval_loss_history: list[tuple[int, float]] = field(default_factory=list)
    adapter_dir: str | None = None
    # Why the run learned nothing (loss at ln(vocabulary), no gradient), or None: see training.trainer.collapse_note.
    collapsed: str | None = None
    memory_plan: dict[str, Any] | None = None  # the batch / checkpointing plan trainer.autotune chose

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Metrics:
        record = super().from_json(data)
        record.train_split = SplitSummary.from_json(data["train_split"])
        if data.get("validation_split"):
            record.validation_split = SplitSummary.from_json(data["validation_split"])
        record.train_loss_history = [(int(s), float(v)) for s, v in data.get("train_loss_history", [])]
        record.eval_loss_history = [(int(s), float(v)) for s, v in data.get("eval_loss_history", [])]
        return record


@dataclass
class DirectionScores(JsonRecord):
    pairs: int
    empty: int  # hypotheses with no text
    truncated: int  # generations cut at max_new_tokens
    bleu: float
    chrf: float
    chrf_pp: float
    signatures: dict[str, str] = field(default_factory=dict)  # sacreBLEU's, per metric


@dataclass
class EvalScores(JsonRecord):
    """``eval.json``: translation scores per direction and their macro average."""

    directions: dict[str, DirectionScores]
    macro: dict[str, float]
    counts: dict[str, int]
    test_file: str = ""
    test_set_sha256: str = ""
    prompt_format: str = ""
    generation: dict[str, Any] = field(default_factory=dict)
    adapter_dir: str | None = None  # sftlab.evaluate: the adapter scored (None: the base model alone)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EvalScores:
        record = super().from_json(data)
        record.directions = {name: DirectionScores.from_json(entry) for name, entry in data["directions"].items()}
        return record


@dataclass
class RunRecord(JsonRecord):
    """``run.json``: how to reproduce the run, and where it is tracked."""

    command: str  # train | evaluate | ask
    seed: int
    git: dict[str, Any]
    data_files: list[str]
    data_sha256: str | None
    packages: dict[str, str]
    python: str
    device: str
    launch: dict[str, Any]
    backend: str
    model_path: str
    argv: list[str]
    tracking: dict[str, str] | None = None  # {"wandb_id": ..., "wandb_url": ...} when the run is tracked
    memory_plan: dict[str, Any] | None = None  # the plan trainer.autotune chose


@dataclass
class Failure(JsonRecord):
    """``failure.json``: why the job stopped; present only while the run dir is a failed run."""

    type: str
    message: str
    user_error: bool  # a SftlabError: bad input or settings, not a bug
    traceback: str | None = None


RECORD_FILES: dict[type[JsonRecord], str] = {Metrics: METRICS, EvalScores: EVAL, RunRecord: RUN, Failure: FAILURE}


def write_record(run_dir: str | Path, record: JsonRecord) -> Path:
    """Write a record into its file of ``run_dir`` (atomically, like :func:`write_json`)."""
    return write_json(Path(run_dir) / RECORD_FILES[type(record)], record.to_json())


def read_record(run_dir: str | Path, kind: type[Record]) -> Record | None:
    """The record of that kind in ``run_dir``; None when the file is absent."""
    path = Path(run_dir) / RECORD_FILES[kind]
    return kind.from_json(read_json(path)) if path.is_file() else None
