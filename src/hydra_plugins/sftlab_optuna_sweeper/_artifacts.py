"""What a sweep leaves in its sweep dir, next to the job dirs, written from the study after every sweep.

- ``optimization_results.yaml``: ``name``, ``best_params`` and ``best_value`` as the official plugin writes them, plus
  the study, the trial counts by state, the best trial's run dir and the command that reruns it
- ``trials.csv``: ``study.trials_dataframe()``, one row per trial with its state, params and user attrs (``reason``)
- ``optimization_history.png`` and ``param_importances.png`` (the latter with two complete trials and two params)
- ``best_overrides.yaml``: the best trial's parameters as a ``# @package _global_`` experiment config
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


def entry_command() -> str:
    """How this process was started: ``python -m pkg.module`` or ``python script.py``."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    if spec is not None and spec.name:
        return f"python -m {spec.name.removesuffix('.__main__')}"
    return f"python {shlex.quote(sys.argv[0])}"


def best_trial(study: optuna.Study) -> FrozenTrial | None:
    try:
        return study.best_trial
    except ValueError:  # no complete trial
        return None


def _key(name: str) -> str:
    return name.lstrip("+")


def _is_hydra_override(name: str) -> bool:
    key = _key(name)
    return key == "hydra" or key.startswith(("hydra.", "hydra/"))


def rerun_overrides(trial: FrozenTrial, space: SearchSpace) -> list[str]:
    """The best trial's job overrides, the sweep's fixed ones first, without Hydra's own (sweep dir, sweeper)."""
    fixed = [f"{name}={value}" for name, value in space.fixed.items()]
    swept = [f"{name}={value}" for name, value in trial.params.items() if name not in space.fixed]
    return [line for line in fixed + swept if not _is_hydra_override(line.split("=", 1)[0])]


def experiment_config(trial: FrozenTrial, space: SearchSpace, groups: set[str]) -> tuple[list[str], DictConfig]:
    """The sweep's parameters with the best trial's values: group choices for a defaults list, and plain values."""
    defaults: list[str] = []
    values = OmegaConf.create({})
    fixed = {name: space.overrides[name].value() for name in space.fixed if name in space.overrides}
    swept = {name: value for name, value in trial.params.items()}
    for name, value in {**swept, **fixed}.items():
        if name.startswith("~") or _is_hydra_override(name):
            continue
        key = _key(name)
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


def write_plots(study: optuna.Study, sweep_dir: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as optuna_plots

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        try:
            axes = optuna_plots.plot_optimization_history(study)
            axes.figure.savefig(sweep_dir / HISTORY_PLOT, bbox_inches="tight", dpi=120)
        except Exception as error:  # a plot is a convenience: never fail a sweep on it
            log.warning(f"optimization history plot skipped: {type(error).__name__}: {error}")
        finally:
            plt.close("all")
        params = {name for trial in complete for name in trial.params}
        if len(complete) < 2 or len(params) < 2:
            log.info(f"parameter importance plot skipped: {len(complete)} complete trial(s), {len(params)} param(s)")
            (sweep_dir / IMPORTANCE_PLOT).unlink(missing_ok=True)
            return
        try:
            warnings.simplefilter("ignore", UserWarning)  # e.g. "importances will be equal" on equal values
            axes = optuna_plots.plot_param_importances(study)
            axes.figure.savefig(sweep_dir / IMPORTANCE_PLOT, bbox_inches="tight", dpi=120)
        except Exception as error:
            log.warning(f"parameter importance plot skipped: {type(error).__name__}: {error}")
        finally:
            plt.close("all")


def write_all(
    study: optuna.Study, sweep_dir: Path, space: SearchSpace, config: DictConfig, storage_label: str
) -> dict[str, Any]:
    """Write every artifact; returns the content of optimization_results.yaml."""
    sweep_dir.mkdir(parents=True, exist_ok=True)
    trials = study.get_trials(deepcopy=False)
    counts = Counter(trial.state.name.lower() for trial in trials)
    best = best_trial(study)
    results: dict[str, Any] = {
        "name": "optuna",
        "best_params": dict(best.params) if best else None,
        "best_value": best.value if best else None,
        "best_trial": best.number if best else None,
        "best_run_dir": best.user_attrs.get("run_dir") if best else None,
        "study_name": study.study_name,
        "storage": storage_label,
        "direction": study.direction.name.lower(),
        "trials": dict(sorted(counts.items())),
    }
    if best is not None:
        command = " ".join([entry_command(), *(shlex.quote(line) for line in rerun_overrides(best, space))])
        results["rerun"] = command
        defaults, values = experiment_config(best, space, set(config.hydra.runtime.choices.keys()))
        header = [
            f"Best trial {best.number} of Optuna study '{study.study_name}': value {best.value} "
            f"({study.direction.name.lower()}d), run dir {best.user_attrs.get('run_dir')}",
            "Rerun it:",
            f"  {command}",
            f"or copy this file to conf/experiment/<name>.yaml and run: {entry_command()} experiment=<name>",
        ]
        write_best_overrides(sweep_dir / BEST_OVERRIDES, header, defaults, values)
    else:
        log.warning(f"no trial of study '{study.study_name}' completed: no best trial ({dict(counts)})")
    OmegaConf.save(OmegaConf.create(results), sweep_dir / RESULTS)
    frame = study.trials_dataframe()
    frame.to_csv(sweep_dir / TRIALS, index=False)
    write_plots(study, sweep_dir)
    return results
