"""``python -m sftlab.evaluate``: score a trained adapter (or the base model alone) on the translation test set.

    python -m sftlab.evaluate eval.adapter_dir=outputs/2026-11-26/10-00-00/adapter   # a trained run
    python -m sftlab.evaluate                                                      # zero-shot baseline

The adapter's own run config decides the model and the prompt format it is scored with, so a run is always
evaluated the way it was trained; other settings come from this command's config. The run dir gets ``run.json``,
``predictions.jsonl`` and ``eval.json``, and the job is tracked as an ``evaluate`` run.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from sftlab import objectives, rundir
from sftlab.commands import builders
from sftlab.commands.job import entry_point
from sftlab.config import ModelConfig, PromptConfig, TrainConfig, register_configs, to_schema
from sftlab.data.splits import load_test_pairs
from sftlab.errors import SftlabError
from sftlab.models.loading import describe, for_inference, load_adapter, release_adapter
from sftlab.process import Process, this_process

register_configs()


def evaluate_task(raw: DictConfig, run_dir: Path) -> float | list[float]:
    cfg = to_schema(raw)
    adapter_dir = Path(cfg.eval.adapter_dir) if cfg.eval.adapter_dir else None
    if adapter_dir is not None:
        cfg = trained_with(adapter_dir, cfg)
    if any(name not in objectives.SCORES for name in objectives.names(cfg.eval.objective)):
        raise SftlabError("sftlab.evaluate scores translations: eval.objective must be chrf, chrf_pp or bleu")
    process = this_process()
    run = builders.runtime(cfg, process)
    # the models live in a frame created after the backend's import, which keeps the frames on its stack (train_task)
    return evaluate_adapter(cfg, run, process, run_dir, adapter_dir)


def evaluate_adapter(
    cfg: TrainConfig, run: builders.Runtime, process: Process, run_dir: Path, adapter_dir: Path | None
) -> float | list[float]:
    """Score the adapter (or the base model alone) on the test translations, once the backend is imported."""
    from sftlab.evaluation.translation import evaluate_translations, print_scores  # after the backend

    pairs = load_test_pairs(dataclasses.replace(cfg.eval, enabled=True))
    tracker = builders.tracker(cfg, run_dir, process, job_type="evaluate")
    builders.describe_run(run_dir, process, builders.record("evaluate", cfg, run), tracking=tracker.link())
    failed, model = True, None
    try:
        base = builders.base_model(cfg, run)
        model = load_adapter(base.model, adapter_dir) if adapter_dir is not None else base.model
        for_inference(model, run.backend)
        tracker.log_model(describe(model))
        prompt_format = builders.prompt_format(cfg.prompt, base.tokenizer)
        scores, predictions = evaluate_translations(model, base.tokenizer, prompt_format, pairs, cfg.eval, run_dir)
        scores.adapter_dir = str(adapter_dir) if adapter_dir else None
        rundir.write_record(run_dir, scores)
        tracker.log_evaluation(scores, predictions)
        failed = False
    finally:
        tracker.finish(failed=failed)
        if adapter_dir is not None and model is not None:
            release_adapter(model)
    print_scores(scores)
    print(f"scores: {run_dir / rundir.EVAL}, predictions: {run_dir / rundir.PREDICTIONS}")
    return objectives.task_result(cfg.eval.objective, scores.to_json(), None)


def trained_with(adapter_dir: Path, cfg: TrainConfig) -> TrainConfig:
    """``cfg`` with the model and prompt format of the run that trained the adapter."""
    if not (adapter_dir / "adapter_config.json").is_file():
        raise SftlabError(f"{adapter_dir}: not an adapter dir (no adapter_config.json)")
    run_config = adapter_dir.parent / rundir.HYDRA_CONFIG
    if not run_config.is_file():
        return cfg
    trained = OmegaConf.load(run_config)
    model = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(ModelConfig), trained.model))
    prompt = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(PromptConfig), trained.prompt))
    return dataclasses.replace(cfg, model=model, prompt=prompt)


@hydra.main(version_base="1.3", config_path="pkg://sftlab.conf", config_name="train")
def main(cfg: DictConfig) -> float | list[float] | None:
    return entry_point(evaluate_task)(cfg)


if __name__ == "__main__":
    main()
