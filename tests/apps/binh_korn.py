"""Toy app in the shape of the official plugin's multi-objective example: the Binh and Korn problem, two minimised
objectives whose Pareto front is known."""

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="conf", config_name="binh_korn")
def binh_korn(cfg: DictConfig) -> tuple[float, float]:
    return 4 * cfg.x**2 + 4 * cfg.y**2, (cfg.x - 5) ** 2 + (cfg.y - 5) ** 2


if __name__ == "__main__":
    binh_korn()
