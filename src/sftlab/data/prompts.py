"""Prompt formats: a record becomes a (prompt, completion) pair of strings.

A format is data, not code: Jinja2 templates and two-level switches (``components``) from ``conf/prompt/*.yaml``.
The templates are rendered with ``trim_blocks``/``lstrip_blocks`` so block tags leave no stray whitespace, in a
sandboxed environment (as transformers does for chat templates). The ``chat_template`` style hands the system
message and the rendered user turn to the tokenizer's own chat template instead.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from sftlab.config import PromptConfig, PromptStyle
from sftlab.data.formats import REASONING_FIELDS
from sftlab.data.records import keywords_text
from sftlab.errors import SftlabError

DEFAULT_EOS = "<|endoftext|>"
# The original recipe's rule, visible to templates as ``min_length``: context, keywords (and their fill into the
# reasoning) and transformed_input are left out when shorter than this.
MIN_PART_LENGTH = 3
# Switches the code reads itself; every other component must appear in the format's templates.
CODE_COMPONENTS = frozenset({"inject_keywords", "system"})


class ChatTokenizer(Protocol):
    eos_token: str | None

    def apply_chat_template(self, conversation: list[dict[str, str]], **kwargs: Any) -> Any: ...


@dataclass(frozen=True)
class RenderedExample:
    prompt: str
    completion: str

    @property
    def text(self) -> str:
        return self.prompt + self.completion


def weave_keywords(reasoning: str, keywords: str, phrase: str) -> str:
    """Insert ``phrase`` (with the keywords filled in) before the word "before" of the reasoning sentence.

    A sentence without " before " gets the phrase at its end instead, so no keyword is ever dropped.
    """
    if not keywords:
        return reasoning
    woven = phrase.format(keywords=keywords)
    head, marker, tail = reasoning.partition(" before ")
    if marker:
        return f"{head}{woven} before {tail}"
    return f"{reasoning.rstrip().rstrip('.')}{woven.rstrip(',')}."


def fill_keywords(reasoning: str, keywords: str, placeholder: str, fill: str, weave_phrase: str | None) -> str:
    """The recipe's fill: keywords of at least ``MIN_PART_LENGTH`` characters replace the placeholder the reasoning
    carries; a reasoning without it gets ``weave_phrase`` woven in (None: left as it is)."""
    if len(keywords) < MIN_PART_LENGTH:
        return reasoning
    if placeholder and placeholder in reasoning:
        return reasoning.replace(placeholder, fill.format(keywords=keywords))
    return weave_keywords(reasoning, keywords, weave_phrase) if weave_phrase else reasoning


class PromptFormat:
    """Renders records in one configured format."""

    def __init__(self, config: PromptConfig, eos_token: str | None = None, tokenizer: ChatTokenizer | None = None):
        self.name = config.name
        self.style = config.style
        self.components = dict(config.components)
        self.system_messages = dict(config.system_messages)
        self.keyword_phrase = config.keyword_phrase
        self.keyword_placeholder = config.keyword_placeholder
        self.keyword_fill = config.keyword_fill
        self.weave_keywords = config.weave_keywords
        self.tokenizer = tokenizer
        self.eos_token = eos_token or (tokenizer.eos_token if tokenizer is not None else None) or DEFAULT_EOS
        described = json.dumps({**dataclasses.asdict(config), "eos": self.eos_token}, sort_keys=True, default=str)
        self.fingerprint = hashlib.sha256(described.encode()).hexdigest()
        if self.style == PromptStyle.chat_template and tokenizer is None:
            raise SftlabError(f"prompt format '{self.name}' uses the tokenizer's chat template: a tokenizer is needed")
        prompt_source = config.prompt_template
        completion_source = config.completion_template
        for name in self.components.keys() - CODE_COMPONENTS:
            if f"components.{name}" not in prompt_source + completion_source:
                raise SftlabError(f"prompt format '{self.name}': component '{name}' is not used by its templates")
        environment = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, undefined=StrictUndefined)
        try:
            self._prompt = environment.from_string(prompt_source)
            self._completion = environment.from_string(completion_source)
        except TemplateError as error:
            raise SftlabError(f"prompt format '{self.name}': template error: {error}") from None

    def _variables(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """The template's variables: a field the record lacks (another format's) is ``""``, so its part drops."""
        variables = {name: "" for name in (*REASONING_FIELDS, "system")}
        variables.update({key: "" if value is None else value for key, value in record.items()})
        keywords = keywords_text(variables["keywords"])
        reasoning = str(variables["reasoning"])
        if self.components.get("inject_keywords"):
            weave = self.keyword_phrase if self.weave_keywords else None
            reasoning = fill_keywords(reasoning, keywords, self.keyword_placeholder, self.keyword_fill, weave)
        variables.update(
            keywords=keywords,
            reasoning_text=reasoning,
            output=str(variables["output"]).removesuffix(self.eos_token),  # the template adds the one end token
            system_message=variables["system"] or self.system_messages.get(str(variables["flag"]), ""),
            components=self.components,
            eos_token=self.eos_token,
            min_length=MIN_PART_LENGTH,
        )
        return variables

    def _render(self, template: Any, variables: dict[str, Any]) -> str:
        try:
            return template.render(**variables)
        except TemplateError as error:
            raise SftlabError(f"prompt format '{self.name}': cannot render: {error}") from None

    def render(self, record: Mapping[str, Any]) -> RenderedExample:
        """The prompt (everything the model is given) and the completion (what it learns to write)."""
        variables = self._variables(record)
        user_turn = self._render(self._prompt, variables)
        completion = self._render(self._completion, variables)
        if self.style != PromptStyle.chat_template:
            return RenderedExample(user_turn, completion)
        messages = [{"role": "user", "content": user_turn.strip()}]
        if self.components.get("system", False) and variables["system_message"]:
            messages.insert(0, {"role": "system", "content": variables["system_message"]})
        prompt = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        answer = completion.removesuffix(self.eos_token)
        full = self.tokenizer.apply_chat_template([*messages, {"role": "assistant", "content": answer}], tokenize=False)
        if not full.startswith(prompt):
            raise SftlabError(f"prompt format '{self.name}': the chat template does not extend the prompt it renders")
        return RenderedExample(prompt, full[len(prompt) :].rstrip())

    def render_prompt(self, record: Mapping[str, Any]) -> str:
        """The prompt alone, for generation."""
        return self.render({**record, "output": record.get("output", "")}).prompt


def prompt_token_ids(tokenizer: Any, prompt: str) -> list[int]:
    """Token ids of a prompt with the tokenizer's BOS, unless the rendered text already starts with it."""
    bos = getattr(tokenizer, "bos_token", None)
    add_special = not (bos and prompt.startswith(bos))
    return tokenizer(prompt, add_special_tokens=add_special)["input_ids"]
