"""Toy app in the shape of the official plugin's custom-search-space example: a four-dimensional sphere whose ``z``
is drawn near ``x`` and whose ``w`` is a new key (``+w``), both by :func:`configure`."""

import hydra
from omegaconf import DictConfig
from optuna.trial import Trial


@hydra.main(version_base="1.3", config_path="conf", config_name="custom_space")
def sphere4(cfg: DictConfig) -> float:
    return cfg.w**2 + cfg.x**2 + cfg.y**2 + cfg.z**2


def configure(cfg: DictConfig, trial: Trial) -> None:
    x = trial.params["x"]
    trial.suggest_float("z", x - cfg.max_z_difference_from_x, x + cfg.max_z_difference_from_x)
    trial.suggest_float("+w", 0.0, 1.0)


if __name__ == "__main__":
    sphere4()
