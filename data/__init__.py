"""The bundled data (reasoning-SFT records and the translation test set), shipped as ``sftlab.bundled`` so the
default configs find it from any directory: ``${sftlab.bundled:reasoning/train_en.jsonl}``."""
