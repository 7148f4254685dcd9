"""A Hydra app for the GPU launcher's tests: each job writes the CUDA_VISIBLE_DEVICES it got, its worker's pid, CPU
affinity and OpenMP threads; a job on the GPU named by ``crash_on`` (or, where no launcher hands out GPUs, the job
whose ``repeat`` is ``crash_on_repeat``) kills its own worker process, as a CUDA crash or the OOM killer would."""

import json
import os
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path=None, config_name=None)
def main(cfg: DictConfig) -> int:
    if os.environ.get("CUDA_VISIBLE_DEVICES") == cfg.crash_on or (
        "crash_on_repeat" in cfg and cfg.repeat == cfg.crash_on_repeat
    ):
        os._exit(9)
    record = {
        "job": HydraConfig.get().job.num,
        "gpu": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "pid": os.getpid(),
        "cpus": sorted(os.sched_getaffinity(0)),
        "omp_threads": os.environ.get("OMP_NUM_THREADS"),
    }
    Path(HydraConfig.get().runtime.output_dir, "job.json").write_text(json.dumps(record))
    return 0


if __name__ == "__main__":
    main()
