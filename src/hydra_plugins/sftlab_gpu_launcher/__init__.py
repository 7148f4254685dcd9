"""sftlab's launchers, one trial per GPU, whose failed job fails its own trial only: ``hydra/launcher=gpus`` (Hydra's
joblib launcher with one worker process per GPU of this host, ``gpu_launcher``), and the launchers behind
``conf/hydra/launcher/ray_gpus.yaml`` (a Ray cluster, ``ray_gpus``) and ``slurm_gpus.yaml`` (SLURM through submitit,
``submitit_gpus``)."""
