"""A Hydra app whose task runs under sftlab's entry-point policy (sftlab.commands.job): it fails with a
``SftlabError`` on ``+fail=true``, pauses on ``+sleep=<s>`` after writing ``started`` in its run dir, else returns
1.0."""

import time
from pathlib import Path

import hydra
from omegaconf import DictConfig

from sftlab.commands.job import entry_point
from sftlab.errors import SftlabError


def task(cfg: DictConfig, run_dir: Path) -> float:
    if cfg.get("sleep"):
        (run_dir / "started").touch()
        time.sleep(float(cfg.sleep))
    if cfg.get("fail"):
        raise SftlabError("told to fail")
    return 1.0


@hydra.main(version_base="1.3", config_path=None, config_name=None)
def main(cfg: DictConfig) -> object:
    return entry_point(task)(cfg)


if __name__ == "__main__":
    main()
