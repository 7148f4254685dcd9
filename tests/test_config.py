from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf.errors import ValidationError

from conftest import CONF, compose_train, run_module

GROUP_OPTIONS = {
    group: sorted(p.stem for p in (CONF / group).glob("*.yaml"))
    for group in ("model", "lora", "trainer", "prompt", "data", "eval", "logger", "backend")
}


def test_defaults_compose_to_the_embedded_model_and_reasoning_tags():
    cfg = compose_train()
    assert cfg.model.name == "smollm2_135m" and cfg.model.source.value == "embedded"
    assert cfg.prompt.name == "reasoning_tags"
    assert cfg.lora.r == 16 and cfg.lora.alpha == 16 and len(cfg.lora.target_modules) == 7
    assert cfg.eval.objective == "chrf"


@pytest.mark.parametrize("group,option", [(g, o) for g, opts in GROUP_OPTIONS.items() for o in opts])
def test_every_group_option_composes(group, option):
    if option == "custom":  # needs the user's file
        cfg = compose_train([f"{group}={option}", "data.train_files=[x.json]"])
    else:
        cfg = compose_train([f"{group}={option}"])
    assert cfg[group] is not None


def test_lora_alpha_follows_rank_unless_set():
    assert compose_train(["lora.r=64"]).lora.alpha == 64
    assert compose_train(["lora.r=64", "lora.alpha=32"]).lora.alpha == 32


def test_unknown_key_fails_at_composition():
    with pytest.raises(ConfigCompositionException, match="trainer.learning_rat"):
        compose_train(["trainer.learning_rat=1e-4"])


def test_wrong_type_fails_at_composition():
    with pytest.raises((ConfigCompositionException, ValidationError)):
        compose_train(["lora.r=sixteen"])


def test_ablations_are_presets_of_the_reasoning_tags_switches():
    base = compose_train().prompt.components
    for name, changed in {
        "no_reasoning": {"reasoning": False},
        "no_metadata": {"keywords": False, "metadata": False},
        "no_transformed_input": {"transformed_input": False},
        "no_system": {"system": False},
    }.items():
        components = compose_train([f"prompt={name}"]).prompt.components
        assert dict(components) == {**base, **changed}, name


def test_cli_prints_the_composed_config():
    result = run_module("sftlab.train", "--cfg", "job", "prompt=no_reasoning", "model=tiny_random")
    assert result.returncode == 0, result.stderr
    assert "name: no_reasoning" in result.stdout
    assert "source: tiny_random" in result.stdout


def test_cli_bad_override_fails_with_hydra_message_and_no_traceback():
    result = run_module("sftlab.train", "--cfg", "job", "lora.rank=8")
    assert result.returncode != 0
    assert "Key 'rank' not in 'LoraConfig'" in result.stderr
    assert "Traceback" not in result.stderr


def test_run_dirs_follow_hydra_defaults():
    """outputs/DATE/TIME (the launch's time, one for all ranks of a DDP launch) and multirun/DATE/TIME."""
    text = (Path(CONF) / "hydra" / "default.yaml").read_text()
    assert "outputs/${sftlab.launch_time:%Y-%m-%d}/${sftlab.launch_time:%H-%M-%S}" in text
    assert "multirun/${now:%Y-%m-%d}/${now:%H-%M-%S}" in text


@pytest.mark.parametrize("command", ["train", "evaluate", "preview"])
def test_the_module_form_prints_sftlabs_own_help(command):
    result = run_module(f"sftlab.{command}", "--help")
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith(f"sftlab {command}:") and "examples:" in result.stdout
