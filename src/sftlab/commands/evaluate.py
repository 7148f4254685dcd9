"""``python -m sftlab.evaluate``: score a trained adapter (or the base model alone) on the translation test set.

    python -m sftlab.evaluate eval.adapter_dir=outputs/2026-11-26/10-00-00/adapter   # a trained run
    python -m sftlab.evaluate                                                      # zero-shot baseline

The adapter's own run config decides the model and the prompt format it is scored with, so a run is always
evaluated the way it was trained; other settings come from this command's config.
"""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from sftlab import objectives, rundir
from sftlab.commands.job import entry_point
from sftlab.config import ModelConfig, PromptConfig, register_configs
from sftlab.data.records import load_translation_pairs
from sftlab.errors import SftlabError
from sftlab.models.backends import resolve_backend

register_configs()


def trained_with(adapter_dir: Path, cfg: DictConfig) -> DictConfig:
    """``cfg`` with the model and prompt format of the run that trained the adapter."""
    if not (adapter_dir / "adapter_config.json").is_file():
        raise SftlabError(f"{adapter_dir}: not an adapter dir (no adapter_config.json)")
    run_config = adapter_dir.parent / rundir.HYDRA_CONFIG
    if not run_config.is_file():
        return cfg
    trained = OmegaConf.load(run_config)
    merged = cfg.copy()
    merged.model = OmegaConf.merge(OmegaConf.structured(ModelConfig), trained.model)
    merged.prompt = OmegaConf.merge(OmegaConf.structured(PromptConfig), trained.prompt)
    return merged


def evaluate_task(cfg: DictConfig, run_dir: Path) -> float:
    adapter_dir = Path(cfg.eval.adapter_dir) if cfg.eval.adapter_dir else None
    if adapter_dir is not None:
        cfg = trained_with(adapter_dir, cfg)
    if cfg.eval.objective == "eval_loss":
        raise SftlabError("sftlab.evaluate scores translations: eval.objective must be chrf, chrf_pp or bleu")
    backend = resolve_backend(cfg.backend.name)
    # Imported after resolve_backend: Unsloth must patch transformers and PEFT before they load.
    from sftlab.data.prompts import PromptFormat
    from sftlab.evaluation import translation as evaluation
    from sftlab.models import loading as models

    pairs = load_translation_pairs(cfg.eval.test_file, cfg.eval.directions, cfg.eval.max_pairs_per_direction)
    precision = models.resolve_precision(cfg.trainer.precision)
    path = models.model_path(cfg.model, cfg.cache_dir)
    model, tokenizer = models.load_base(path, backend, cfg.model.load_in_4bit, precision, cfg.trainer.max_seq_length)
    if adapter_dir is not None:
        model = models.load_adapter(model, adapter_dir)
    models.for_inference(model, backend)
    prompt_format = PromptFormat(OmegaConf.to_container(cfg.prompt, resolve=True), tokenizer=tokenizer)
    try:
        scores, _ = evaluation.evaluate_translations(model, tokenizer, prompt_format, pairs, cfg.eval, run_dir)
    finally:
        if adapter_dir is not None:
            models.release_adapter(model)
    scores["adapter_dir"] = str(adapter_dir) if adapter_dir else None
    rundir.write_json(run_dir / rundir.EVAL, scores)
    evaluation.print_scores(scores)
    print(f"scores: {run_dir / rundir.EVAL}, predictions: {run_dir / rundir.PREDICTIONS}")
    return objectives.value(cfg.eval.objective, scores, None)


@hydra.main(version_base="1.3", config_path="pkg://sftlab.conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    return entry_point(evaluate_task)(cfg)


if __name__ == "__main__":
    main()
