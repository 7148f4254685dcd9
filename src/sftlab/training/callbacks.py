"""Trainer callbacks: stop on a non-finite loss, hand logs to a tracker, report to a sweep trial and prune.

The entry point builds the tracker's and the trial's callbacks and hands them in; training itself knows neither
W&B nor Optuna.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Protocol

from transformers import TrainerCallback

from sftlab.errors import TrainingFault, TrialPruned


class FaultGuard(TrainerCallback):
    """Stops training on a non-finite loss or gradient norm, with the step it happened at."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        for name in ("loss", "grad_norm", "eval_loss"):
            value = (logs or {}).get(name)
            if value is not None and not math.isfinite(float(value)):
                raise TrainingFault(
                    f"{name} became {value} at step {state.global_step}; lower trainer.learning_rate or check the data"
                )


class StepReporter(TrainerCallback):
    """Hands every log dict (train and eval) to a plain function, e.g. a tracker or a sweep's pruning hook."""

    def __init__(self, report: Callable[[dict[str, float], int], None]):
        self.report = report

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs:
            self.report({k: float(v) for k, v in logs.items() if isinstance(v, (int, float))}, state.global_step)


class Reporter(Protocol):
    """A sweep trial as training sees it (``sftlab.sweep.trial``): report a loss, ask whether to stop."""

    def report(self, step: int, value: float) -> None: ...

    def should_prune(self) -> bool: ...


class PruningCallback(TrainerCallback):
    """Reports each evaluation loss to a sweep trial and stops the training its pruner gives up on.

    No pruning decision before the first step or after the last one: the step-0 loss says nothing about the trial,
    and a finished training is worth its evaluation.
    """

    REPORTED = "eval_loss"  # lower is better, whatever the sweep's objective

    def __init__(self, reporter: Reporter):
        self.reporter = reporter

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        value = (metrics or {}).get(self.REPORTED)
        if value is None:
            return
        self.reporter.report(state.global_step, float(value))
        if 0 < state.global_step < state.max_steps and self.reporter.should_prune():
            raise TrialPruned(f"pruned at step {state.global_step}: {self.REPORTED} {float(value):.4f}")
