"""Toy app in the shape of the official hydra-optuna-sweeper's ``sphere`` example, for the sweeper's parity tests:
x² + y², a failure on ``error=true``, a pause on ``+sleep=<s>`` (after writing ``started`` in its run dir, for the
Ctrl-C test), and a ``run.json`` holding W&B-style tracking links on ``+tracked=true``."""

import json
import time
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="conf", config_name="sphere")
def sphere(cfg: DictConfig) -> float:
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    if cfg.get("tracked"):
        number = HydraConfig.get().job.num
        tracking = {"wandb_id": f"run{number}", "wandb_url": f"https://wandb.example/run{number}"}
        (run_dir / "run.json").write_text(json.dumps({"tracking": tracking}))
    if cfg.get("sleep"):
        (run_dir / "started").touch()
        time.sleep(float(cfg.sleep))
    if cfg.get("error", False):
        raise RuntimeError("cfg.error is true")
    return cfg.x**2 + cfg.y**2


if __name__ == "__main__":
    sphere()
