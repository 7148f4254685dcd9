"""What a sweep leaves in its sweep dir, next to the job dirs, written from the study after every sweep.

- ``optimization_results.yaml``: as the official plugin writes it (``name``, and ``best_params`` / ``best_value``
  for one objective, ``solutions`` (each front trial's ``params`` and ``values``) for several), plus the study, the
  trial counts by state, the metric names, the chosen trial's run dir and the command that reruns it
- ``trials.csv``: ``study.trials_dataframe()``, one row per trial with its state, values, params and user attrs
  (``reason``, ``run_dir``, ``wandb_url``)
- ``optimization_history.png`` and ``param_importances.png`` (the latter with two complete trials and two params);
  with several objectives, of the first
- with several objectives, ``pareto_front.csv`` (the non-dominated trials: values, params, run dir, rerun command)
  and ``pareto_front.png`` (two or three objectives)
- ``best_overrides.yaml``: the chosen trial's parameters as a ``# @package _global_`` experiment config. With one
  objective the chosen trial is the best; with several it is the front trial best on the first objective (ties
  broken by the next), e.g. the best chrF among the trials nothing beats on both chrF and training time.
"""

from __future__ import annotations

import logging
import shlex
import sys
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import optuna
from omegaconf import DictConfig, OmegaConf
from optuna.trial import FrozenTrial, TrialState

from sftlab.sweep import rundir

from ._search_space import SearchSpace

log = logging.getLogger(__name__)

RESULTS = rundir.SWEEP_RESULTS
TRIALS = rundir.SWEEP_TRIALS
HISTORY_PLOT = rundir.SWEEP_HISTORY_PLOT
IMPORTANCE_PLOT = rundir.SWEEP_IMPORTANCE_PLOT
BEST_OVERRIDES = rundir.SWEEP_BEST_OVERRIDES
PARETO = rundir.SWEEP_PARETO
PARETO_PLOT = rundir.SWEEP_PARETO_PLOT


def entry_command() -> str:
    """How this process was started: ``python -m pkg.module`` or ``python script.py``."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    if spec is not None and spec.name:
        return f"python -m {spec.name.removesuffix('.__main__')}"
    return f"python {shlex.quote(sys.argv[0])}"


def metric_names(study: optuna.Study) -> list[str]:
    return list(study.metric_names or [f"value_{i}" for i in range(len(study.directions))])


def front(study: optuna.Study) -> list[FrozenTrial]:
    """The non-dominated complete trials (for one objective, the best), in trial order."""
    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return []
    return sorted(study.best_trials, key=lambda t: t.number)


def chosen_trial(study: optuna.Study) -> FrozenTrial | None:
    """The best trial; with several objectives, the front trial best on the first objective, then the next."""
    signs = [1.0 if d == optuna.study.StudyDirection.MINIMIZE else -1.0 for d in study.directions]
    trials = front(study)
    return min(trials, key=lambda t: [s * v for s, v in zip(signs, t.values, strict=True)]) if trials else None


def _key(name: str) -> str:
    return name.lstrip("+")


def _is_hydra_override(name: str) -> bool:
    key = _key(name)
    return key == "hydra" or key.startswith(("hydra.", "hydra/"))


def rerun_overrides(trial: FrozenTrial, space: SearchSpace) -> list[str]:
    """A trial's job overrides, the sweep's fixed ones first, without Hydra's own (sweep dir, sweeper)."""
    fixed = [f"{name}={value}" for name, value in space.fixed.items()]
    swept = [f"{name}={value}" for name, value in trial.params.items() if name not in space.fixed]
    lines = [line for line in fixed + swept if not _is_hydra_override(line.split("=", 1)[0])]
    return lines + space.deletes


def rerun_command(trial: FrozenTrial, space: SearchSpace) -> str:
    return " ".join([entry_command(), *(shlex.quote(line) for line in rerun_overrides(trial, space))])


# Groups that configure the sweep itself: an experiment made from its best trial runs one job, not the sweep again.
SWEEP_GROUPS = ("hparams_search", "design")


def experiment_config(trial: FrozenTrial, space: SearchSpace, groups: set[str]) -> tuple[list[str], DictConfig]:
    """The sweep's parameters with the best trial's values: group choices for a defaults list, and plain values."""
    defaults: list[str] = []
    values = OmegaConf.create({})
    fixed = {name: space.overrides[name].value() for name in space.fixed if name in space.overrides}
    swept = {name: value for name, value in trial.params.items()}
    for name, value in {**swept, **fixed}.items():
        key = _key(name)
        if name.startswith("~") or _is_hydra_override(name) or key in SWEEP_GROUPS:
            continue
        if key in groups:
            defaults.append(f"override /{key}: {value}")
        else:
            OmegaConf.update(values, key, value, force_add=True)
    return defaults, values


def write_best_overrides(path: Path, header: list[str], defaults: list[str], values: DictConfig) -> None:
    lines = ["# @package _global_", *(f"# {line}" if line else "#" for line in header)]
    if defaults:
        lines += ["defaults:", *(f"  - {entry}" for entry in defaults)]
    body = OmegaConf.to_yaml(values) if len(values) else ""
    path.write_text("\n".join(lines) + "\n" + body, encoding="utf-8")


def _save(sweep_dir: Path, name: str, draw: Any) -> None:
    """Draw one plot into the sweep dir; a plot is a convenience: never fail a sweep on it."""
    import matplotlib.pyplot as plt

    try:
        axes = draw()
        figure = axes.figure if hasattr(axes, "figure") else axes.flat[0].figure
        figure.savefig(sweep_dir / name, bbox_inches="tight", dpi=120)
    except Exception as error:
        log.warning(f"{name} skipped: {type(error).__name__}: {error}")
    finally:
        plt.close("all")


def write_plots(study: optuna.Study, sweep_dir: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from optuna.visualization import matplotlib as optuna_plots

    names = metric_names(study)
    several = len(study.directions) > 1
    first = {"target": (lambda t: t.values[0]), "target_name": names[0]} if several else {}
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        warnings.simplefilter("ignore", UserWarning)  # e.g. "importances will be equal" on equal values
        _save(sweep_dir, HISTORY_PLOT, lambda: optuna_plots.plot_optimization_history(study, **first))
        params = {name for trial in complete for name in trial.params}
        if len(complete) < 2 or len(params) < 2:
            log.info(f"parameter importance plot skipped: {len(complete)} complete trial(s), {len(params)} param(s)")
            (sweep_dir / IMPORTANCE_PLOT).unlink(missing_ok=True)
        else:
            _save(sweep_dir, IMPORTANCE_PLOT, lambda: optuna_plots.plot_param_importances(study, **first))
        if several and len(names) <= 3 and complete:
            _save(sweep_dir, PARETO_PLOT, lambda: optuna_plots.plot_pareto_front(study, target_names=names))


def write_pareto(study: optuna.Study, space: SearchSpace, path: Path) -> list[dict[str, Any]]:
    """The front as a CSV, one row per trial: number, values by metric name, params, run dir, W&B, rerun command."""
    import pandas as pd

    rows = [
        {
            "number": t.number,
            **dict(zip(metric_names(study), t.values, strict=True)),
            **{f"params_{name}": value for name, value in t.params.items()},
            "run_dir": t.user_attrs.get("run_dir"),
            "wandb_url": t.user_attrs.get("wandb_url"),
            "rerun": rerun_command(t, space),
        }
        for t in front(study)
    ]
    pd.DataFrame(rows).to_csv(path, index=False)
    return rows


def write_all(
    study: optuna.Study, sweep_dir: Path, space: SearchSpace, config: DictConfig, storage_label: str
) -> dict[str, Any]:
    """Write every artifact; returns the content of optimization_results.yaml."""
    sweep_dir.mkdir(parents=True, exist_ok=True)
    counts = Counter(trial.state.name.lower() for trial in study.get_trials(deepcopy=False))
    chosen = chosen_trial(study)
    several = len(study.directions) > 1
    results: dict[str, Any] = {"name": "optuna"}
    if several:
        results["solutions"] = [{"params": dict(t.params), "values": list(t.values)} for t in front(study)]
        write_pareto(study, space, sweep_dir / PARETO)
    else:
        results["best_params"] = dict(chosen.params) if chosen else None
        results["best_value"] = chosen.value if chosen else None
    directions = [d.name.lower() for d in study.directions]
    results.update(
        best_trial=chosen.number if chosen else None,
        best_run_dir=chosen.user_attrs.get("run_dir") if chosen else None,
        study_name=study.study_name,
        storage=storage_label,
        direction=directions if several else directions[0],
        metric_names=metric_names(study),
        trials=dict(sorted(counts.items())),
    )
    if chosen is not None:
        results["rerun"] = rerun_command(chosen, space)
        write_best_overrides(
            sweep_dir / BEST_OVERRIDES,
            header(study, chosen, results["rerun"], space),
            *(experiment_config(chosen, space, set(config.hydra.runtime.choices.keys()))),
        )
    else:
        (sweep_dir / BEST_OVERRIDES).unlink(missing_ok=True)
        log.warning(f"no trial of study '{study.study_name}' completed: no best trial ({dict(counts)})")
    OmegaConf.save(OmegaConf.create(results), sweep_dir / RESULTS)
    study.trials_dataframe().to_csv(sweep_dir / TRIALS, index=False)
    write_plots(study, sweep_dir)
    return results


def header(study: optuna.Study, chosen: FrozenTrial, command: str, space: SearchSpace) -> list[str]:
    values = ", ".join(f"{name} {value}" for name, value in zip(metric_names(study), chosen.values, strict=True))
    which = f"Best trial {chosen.number}"
    if len(study.directions) > 1:
        which = f"Pareto-front trial {chosen.number} (the front's best on the first objective)"
    lines = [
        f"{which} of Optuna study '{study.study_name}': {values}, run dir {chosen.user_attrs.get('run_dir')}",
        "Rerun it:",
        f"  {command}",
        f"or copy this file to conf/experiment/<name>.yaml and run: {entry_command()} experiment=<name>"
        + (f" {' '.join(space.deletes)}" if space.deletes else ""),
    ]
    if len(study.directions) > 1:
        lines.append(f"Every front trial, with its rerun command: {PARETO}")
    return lines
