"""Judge templates: TOML files with named fields, each with a version, rendered through the
model's chat template.

A template has a `rubric`, a `system` text (with `{rubric}`), a `pairwise` user text (with
`{prompt}`, `{first}`, `{second}`), a `binary` one (with `{prompt}`, `{response}`) and a
`chain_of_thought` instruction. The conversation comes before the responses so that the two
orders of a pair share the longest possible prefix.
"""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass, replace
from importlib import resources
from typing import Any

from transformers import PreTrainedTokenizerBase

_FIELDS = {"system": {"rubric"}, "pairwise": {"prompt", "first", "second"}}
_FIELDS["binary"] = {"prompt", "response"}


class TemplateError(ValueError):
    """A template that cannot be found or rendered."""


@dataclass(frozen=True)
class JudgeTemplate:
    """A judge prompt template and its version."""

    name: str
    version: str
    rubric: str
    system: str
    pairwise: str
    binary: str
    chain_of_thought: str

    @property
    def identity(self) -> str:
        """`name@version`, as stored with every AI label."""
        return f"{self.name}@{self.version}"

    def with_rubric(self, rubric: str) -> JudgeTemplate:
        """This template with a project's own rubric; the version records the change."""
        digest = hashlib.sha256(rubric.encode()).hexdigest()[:8]
        return replace(self, rubric=rubric, version=f"{self.version}+rubric.{digest}")


def available() -> list[str]:
    """Names of the templates Arbiter ships."""
    files = resources.files(__package__).iterdir()
    return sorted(f.name.removesuffix(".toml") for f in files if f.name.endswith(".toml"))


def load_template(name: str) -> JudgeTemplate:
    """A shipped template by name."""
    if name not in available():
        raise TemplateError(f"unknown judge template {name!r}; known: {', '.join(available())}")
    data: dict[str, Any] = tomllib.loads(
        resources.files(__package__).joinpath(f"{name}.toml").read_text()
    )
    return parse_template(data)


def custom_template(data: dict[str, Any]) -> JudgeTemplate:
    """A project's own template; its version is a digest of its texts."""
    digest = hashlib.sha256(repr(sorted(data.items())).encode()).hexdigest()[:8]
    return parse_template({**data, "version": f"custom.{digest}"})


def parse_template(data: dict[str, Any]) -> JudgeTemplate:
    """A template from its fields, checking each text names the fields it must."""
    for key, needed in _FIELDS.items():
        text = data.get(key)
        if not isinstance(text, str):
            raise TemplateError(f"template field {key!r} is missing")
        missing = [f for f in sorted(needed) if "{" + f + "}" not in text]
        if missing:
            raise TemplateError(f"template field {key!r} must contain {{{missing[0]}}}")
    return JudgeTemplate(
        name=str(data["name"]),
        version=str(data.get("version", 1)),
        rubric=str(data.get("rubric", "")),
        system=data["system"],
        pairwise=data["pairwise"],
        binary=data["binary"],
        chain_of_thought=str(data.get("chain_of_thought", "")),
    )


def render(
    tokenizer: PreTrainedTokenizerBase, template: JudgeTemplate, user_text: str, *, cot: bool
) -> str:
    """The chat-formatted prompt text, ending where the assistant's answer starts."""
    if cot and template.chain_of_thought:
        user_text = f"{user_text}\n\n{template.chain_of_thought}"
    messages = [
        {"role": "system", "content": template.system.format(rubric=template.rubric)},
        {"role": "user", "content": user_text},
    ]
    text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    if not isinstance(text, str):
        raise TemplateError("the tokenizer's chat template did not return text")
    return text
