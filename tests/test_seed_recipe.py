"""``experiment=seed_recipe``: the original training recipe, every value of it, composed as a run would be."""

from conftest import compose_train
from sftlab.config import Backend, SaveStrategy, to_schema


def test_seed_recipe_composes_the_original_recipe():
    cfg = to_schema(compose_train(["experiment=seed_recipe"]))
    assert (cfg.model.path, cfg.model.load_in_4bit) == ("unsloth/llama-3-8b-bnb-4bit", True)
    assert cfg.backend.name == Backend.unsloth and cfg.trainer.gradient_checkpointing  # Unsloth's checkpointing
    assert (cfg.lora.r, cfg.lora.alpha, cfg.lora.dropout, cfg.lora.bias) == (16, 16, 0.0, "none")
    assert cfg.lora.target_modules == ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    assert cfg.seed == 3407 and cfg.run_name.endswith("-s3407")
    trainer = cfg.trainer
    assert (trainer.optim, trainer.learning_rate) == ("paged_adamw_32bit", 1e-4)
    assert (trainer.per_device_train_batch_size, trainer.gradient_accumulation_steps) == (2, 1)
    assert (trainer.num_train_epochs, trainer.max_steps, trainer.max_seq_length) == (1, -1, 1024)
    assert trainer.completion_only_loss is False and trainer.group_by_length is True
    assert trainer.save_strategy == SaveStrategy.epoch and trainer.logging_steps == 100
    assert cfg.prompt.name == "reasoning_tags" and cfg.prompt.weave_keywords is False


def test_an_override_still_wins_over_the_preset():
    cfg = compose_train(["experiment=seed_recipe", "seed=7", "trainer.learning_rate=2e-4"])
    assert cfg.seed == 7 and cfg.trainer.learning_rate == 2e-4
