"""``hydra/launcher=gpus``: Hydra's joblib launcher with one job per GPU, each job's ``CUDA_VISIBLE_DEVICES`` set by
the launcher (``gpu_launcher``)."""
