"""sftlab: Hydra-configured LoRA/QLoRA reasoning-SFT experiments."""

__version__ = "0.1.0"
