"""Golden renderings of every prompt format, and the rules of the reasoning-tag format.

Regenerate the golden files after an intended change with ``SFTLAB_UPDATE_GOLDEN=1 pytest tests/test_prompts.py``
and review the diff.
"""

import json
import os
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from conftest import CONF, compose_train
from sftlab.data.prompts import PromptFormat, weave_keywords
from sftlab.errors import SftlabError
from sftlab.models.loading import build_tiny_tokenizer

GOLDEN = Path(__file__).parent / "golden"
RECORDS = json.loads((GOLDEN / "records.json").read_text(encoding="utf-8"))
FORMATS = sorted(p.stem for p in (CONF / "prompt").glob("*.yaml"))
SEPARATOR = "\n=== completion ===\n"
EOS = "<|endoftext|>"


def prompt_format(name: str) -> PromptFormat:
    config = OmegaConf.to_container(compose_train([f"prompt={name}"]).prompt, resolve=True)
    if config["style"] == "chat_template":  # ends turns with the tokenizer's own end-of-sequence token
        return PromptFormat(config, tokenizer=build_tiny_tokenizer())
    return PromptFormat(config, eos_token=EOS)


@pytest.mark.parametrize("record_name", sorted(RECORDS))
@pytest.mark.parametrize("format_name", FORMATS)
def test_golden_rendering(format_name, record_name):
    example = prompt_format(format_name).render(RECORDS[record_name])
    rendered = example.prompt + SEPARATOR + example.completion + "\n"
    golden = GOLDEN / f"{format_name}.{record_name}.txt"
    if os.environ.get("SFTLAB_UPDATE_GOLDEN"):
        golden.write_text(rendered, encoding="utf-8")
    assert rendered == golden.read_text(encoding="utf-8")


@pytest.mark.parametrize("record_name", sorted(RECORDS))
@pytest.mark.parametrize("format_name", FORMATS)
def test_clean_whitespace_and_exactly_one_eos(format_name, record_name):
    fmt = prompt_format(format_name)
    example = fmt.render(RECORDS[record_name])
    assert example.completion.count(fmt.eos_token) == 1 and example.completion.endswith(fmt.eos_token)
    if fmt.style == "template":  # a chat template closes every turn with it; a template format only the answer
        assert fmt.eos_token not in example.prompt
    assert not example.prompt.startswith((" ", "\n"))
    for line in example.text.splitlines():
        assert line == line.rstrip(), f"trailing whitespace in {line!r}"
        assert not line.startswith((" ", "\t")), f"stray indentation in {line!r}"
    assert "\n\n\n" not in example.text


def test_reasoning_tags_order_and_content():
    example = prompt_format("reasoning_tags").render(RECORDS["japanese"])
    tags = [line.split("|>")[0] + "|>" for line in example.prompt.splitlines() if line.startswith("<|")]
    assert tags == [
        "<|system|>",
        "<|instruction|>",
        "<|context|>",
        "<|reasoning|>",
        "<|keywords|>",
        "<|field|>",
        "<|flag|>",
        "<|language|>",
        "<|transformed_input|>",
        "<|response|>",
    ]
    assert "<|system|>You are a creative writer." in example.prompt
    assert "into the voice, referring to relevant field information such as キャラクター, セリフ, before writing" in (
        example.prompt
    )
    assert example.prompt.endswith("<|response|>")
    assert example.completion == RECORDS["japanese"]["output"] + EOS


def test_transformed_input_only_for_non_english_non_translator_records():
    fmt = prompt_format("reasoning_tags")
    assert "<|transformed_input|>" in fmt.render(RECORDS["japanese"]).prompt
    assert "<|transformed_input|>" not in fmt.render(RECORDS["chinese"]).prompt  # translator flag
    english = {**RECORDS["english"], "transformed_input": "should not appear"}
    assert "<|transformed_input|>" not in fmt.render(english).prompt


def test_optional_lines_disappear_when_the_record_has_nothing_for_them():
    bare = {**RECORDS["english"], "input": "", "keywords": []}
    prompt = prompt_format("reasoning_tags").render(bare).prompt
    assert "<|context|>" not in prompt and "<|keywords|>" not in prompt
    assert "referring to relevant field information" not in prompt


def test_reasoning_after_metadata_when_switched():
    config = OmegaConf.to_container(compose_train(["prompt.components.reasoning_first=false"]).prompt, resolve=True)
    lines = PromptFormat(config, eos_token=EOS).render(RECORDS["english"]).prompt.splitlines()
    assert [line[:12] for line in lines].index("<|reasoning|") > [line[:11] for line in lines].index("<|language|")


def test_weave_keywords_without_before_appends_the_phrase():
    phrase = ", referring to relevant field information such as {keywords},"
    assert weave_keywords("Check the facts.", ["a", "b"], phrase) == (
        "Check the facts, referring to relevant field information such as a, b."
    )
    assert weave_keywords("Check before answering.", [], phrase) == "Check before answering."


def test_a_component_the_templates_never_use_is_refused():
    config = OmegaConf.to_container(compose_train().prompt, resolve=True)
    config["components"]["reasonig"] = True
    with pytest.raises(SftlabError, match="component 'reasonig' is not used"):
        PromptFormat(config, eos_token=EOS)


def test_chat_template_uses_the_tokenizers_template():
    example = prompt_format("chat_template").render(RECORDS["english"])
    assert example.prompt.startswith("<|im_start|>system\nYou are a careful logician.")
    assert example.prompt.endswith("<|im_start|>assistant\n")
    assert example.completion == RECORDS["english"]["output"] + "<|im_end|>"
