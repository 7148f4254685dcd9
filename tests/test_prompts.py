"""Golden renderings of every prompt format, and the rules of the reasoning-tag format: the original recipe's records
rendered exactly as the recipe renders them.

Regenerate the golden files after an intended change with ``SFTLAB_UPDATE_GOLDEN=1 pytest tests/test_prompts.py``
and review the diff.
"""

import json
import os
from pathlib import Path

import pytest

from conftest import CONF, compose_train
from sftlab.config import PromptStyle, to_schema
from sftlab.data import records as data
from sftlab.data.prompts import PromptFormat, fill_keywords, weave_keywords
from sftlab.errors import SftlabError
from sftlab.models.loading import build_tiny_tokenizer

GOLDEN = Path(__file__).parent / "golden"
RECORDS = json.loads((GOLDEN / "records.json").read_text(encoding="utf-8"))
# Records in the recipe's shape (keywords a string, the placeholder in the reasoning), with its edge cases.
RECIPE_RECORDS = json.loads((GOLDEN / "recipe_records.json").read_text(encoding="utf-8"))
FORMATS = sorted(p.stem for p in (CONF / "prompt").glob("*.yaml"))
SEPARATOR = "\n=== completion ===\n"
EOS = "<|endoftext|>"


def prompt_format(name: str) -> PromptFormat:
    config = to_schema(compose_train([f"prompt={name}"])).prompt
    if config.style == PromptStyle.chat_template:  # ends turns with the tokenizer's own end-of-sequence token
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
    config = to_schema(compose_train(["prompt.components.reasoning_first=false"])).prompt
    lines = PromptFormat(config, eos_token=EOS).render(RECORDS["english"]).prompt.splitlines()
    assert [line[:12] for line in lines].index("<|reasoning|") > [line[:11] for line in lines].index("<|language|")


def test_weave_keywords_without_before_appends_the_phrase():
    phrase = ", referring to relevant field information such as {keywords},"
    assert weave_keywords("Check the facts.", "a, b", phrase) == (
        "Check the facts, referring to relevant field information such as a, b."
    )
    assert weave_keywords("Check before answering.", "", phrase) == "Check before answering."


def test_a_component_the_templates_never_use_is_refused():
    config = to_schema(compose_train()).prompt
    config.components["reasonig"] = True
    with pytest.raises(SftlabError, match="component 'reasonig' is not used"):
        PromptFormat(config, eos_token=EOS)


def test_chat_template_uses_the_tokenizers_template():
    example = prompt_format("chat_template").render(RECORDS["english"])
    assert example.prompt.startswith("<|im_start|>system\nYou are a careful logician.")
    assert example.prompt.endswith("<|im_start|>assistant\n")
    assert example.completion == RECORDS["english"]["output"] + "<|im_end|>"


def recipe_text(record: dict, system_messages: dict, eos: str) -> str:
    """The original recipe's formatting function, transcribed line by line: the reference the format must match."""
    keywords, reasoning = record["keywords"], record["reasoning"]
    text = f"<|system|>{system_messages[record['flag']]}\n<|instruction|>{record['instruction']}\n"
    if len(record["input"]) >= 3:
        text += f"<|context|>{record['input']}\n"
    if len(keywords) >= 3:
        reasoning = reasoning.replace(
            ", referring to relevant field information, before",
            f", referring to relevant field information such as {keywords}, before",
        )
    text += f"<|reasoning|>{reasoning}\n"
    if len(keywords) >= 3:
        text += f"<|keywords|>{keywords}\n"
    text += f"<|field|>{record['field']}\n<|flag|>{record['flag']}\n<|language|>{record['language']}\n"
    if record["language"] != "English" and record["flag"] != "translator" and len(record["transformed_input"]) >= 3:
        text += f"<|transformed_input|>{record['transformed_input']}\n"
    return text + f"<|response|>{record['output']}{eos}"


def seed_recipe_format() -> PromptFormat:
    return PromptFormat(to_schema(compose_train(["experiment=seed_recipe"])).prompt, EOS)


@pytest.mark.parametrize("record_name", sorted(RECIPE_RECORDS))
def test_recipe_records_render_exactly_as_the_recipe(tmp_path, record_name):
    """Read from a file in the recipe's shape (a JSON array, keywords a string) and rendered: the recipe's text."""
    raw = RECIPE_RECORDS[record_name]
    path = tmp_path / "alpaca_multi_language_train.json"
    path.write_text(json.dumps([raw], ensure_ascii=False), encoding="utf-8")
    (record,) = data.load_records([path])
    fmt = seed_recipe_format()
    example = fmt.render(record.as_dict())
    assert example.text == recipe_text(raw, fmt.system_messages, EOS)
    if record_name != "english_creator_no_placeholder":  # only there does the default weave differ
        assert prompt_format("reasoning_tags").render(raw).text == example.text


@pytest.mark.parametrize("record_name", sorted(RECIPE_RECORDS))
def test_recipe_golden_rendering(record_name):
    example = prompt_format("reasoning_tags").render(RECIPE_RECORDS[record_name])
    rendered = example.prompt + SEPARATOR + example.completion + "\n"
    golden = GOLDEN / f"recipe.{record_name}.txt"
    if os.environ.get("SFTLAB_UPDATE_GOLDEN"):
        golden.write_text(rendered, encoding="utf-8")
    assert rendered == golden.read_text(encoding="utf-8")


def test_the_three_character_rule():
    fmt = prompt_format("reasoning_tags")
    short = fmt.render(RECIPE_RECORDS["english_logician_short_parts"]).prompt
    assert "<|context|>" not in short and "<|keywords|>" not in short
    assert "field information, before concluding" in short  # 2-character keywords: the placeholder stays
    edge = fmt.render(RECIPE_RECORDS["japanese_assistant_edge"]).prompt
    assert "<|context|>" not in edge and "<|transformed_input|>" not in edge  # "はい", "ok"
    assert "<|keywords|>RAM\n" in edge and "information such as RAM, before answering" in edge  # exactly 3
    one = fmt.render(RECIPE_RECORDS["chinese_assistant_one_char"]).prompt
    assert "<|context|>" not in one and "<|keywords|>" not in one and "<|transformed_input|>Introduce" in one


def test_the_placeholder_is_replaced_never_doubled():
    prompt = prompt_format("reasoning_tags").render(RECIPE_RECORDS["japanese_creator"]).prompt
    assert (
        "into the voice, referring to relevant field information such as キャラクター, セリフ, before writing" in prompt
    )
    assert ",," not in prompt and prompt.count("referring to relevant field information") == 1


def test_keywords_as_a_string_or_a_list_render_alike():
    fmt = prompt_format("reasoning_tags")
    as_string = {**RECORDS["japanese"], "keywords": "キャラクター, セリフ"}
    assert fmt.render(as_string).text == fmt.render(RECORDS["japanese"]).text
    assert "<|keywords|>キャラクター, セリフ\n" in fmt.render(as_string).prompt  # not split into characters


def test_the_weave_is_a_switch_for_reasoning_without_the_placeholder():
    record = RECIPE_RECORDS["english_creator_no_placeholder"]
    woven = prompt_format("reasoning_tags").render(record).prompt
    assert "season, referring to relevant field information such as autumn, rain, before writing" in woven
    plain = seed_recipe_format().render(record).prompt
    assert "<|reasoning|>Pick one concrete image of the season before writing two short lines.\n" in plain
    placeholder, fill = ", p, before", ", p such as {keywords}, before"
    assert fill_keywords("a, p, before b", "ab", placeholder, fill, None) == "a, p, before b"
    assert fill_keywords("a, p, before b", "x y", placeholder, fill, None) == "a, p such as x y, before b"


def test_one_clean_end_token():
    fmt = prompt_format("reasoning_tags")
    example = fmt.render({**RECIPE_RECORDS["chinese_translator"], "output": "Water freezes." + EOS})
    assert example.completion == "Water freezes." + EOS


ALPACA = {"instruction": "Name a prime number.", "input": "", "output": "7"}
CHAT = {"instruction": "Say hi.", "output": "Hi!", "system": "You are terse."}


@pytest.mark.parametrize("format_name", FORMATS)
def test_formats_without_the_reasoning_fields_drop_their_parts(format_name):
    fmt = prompt_format(format_name)
    for record in (ALPACA, CHAT):
        example = fmt.render(record)
        assert example.completion.endswith(record["output"] + fmt.eos_token)
        assert "Say hi." in example.prompt or "Name a prime number." in example.prompt
        for tag in ("<|reasoning|>", "<|keywords|>", "<|field|>", "<|flag|>", "<|language|>", "<|transformed"):
            assert tag not in example.prompt
        for line in example.text.splitlines():
            assert line == line.rstrip()


def test_reasoning_tags_on_an_alpaca_and_a_chat_record():
    fmt = prompt_format("reasoning_tags")
    alpaca = {**ALPACA, "input": "Between 5 and 10."}
    assert fmt.render(alpaca).text == (
        "<|instruction|>Name a prime number.\n<|context|>Between 5 and 10.\n<|response|>7" + EOS
    )
    assert fmt.render(CHAT).prompt == "<|system|>You are terse.\n<|instruction|>Say hi.\n<|response|>"
    chat = prompt_format("chat_template").render(CHAT)
    assert chat.prompt.startswith("<|im_start|>system\nYou are terse.<|im_end|>")
