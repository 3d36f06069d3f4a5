"""The framing of critique and revision requests: a TOML file with a version, like the judge
templates, and the HH-RLHF dialogue format turned into chat messages."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from importlib import resources

_TURN = re.compile(r"\n\n(Human|Assistant):")


@dataclass(frozen=True)
class RevisionTemplate:
    """How a round asks for a critique (with {critique_request}) and a revision."""

    name: str
    version: str
    critique: str
    revision: str

    @property
    def identity(self) -> str:
        """`name@version`, as recorded with every chain."""
        return f"{self.name}@{self.version}"


def load_revision_template(name: str = "critique-revision") -> RevisionTemplate:
    """The shipped critique -> revision framing."""
    data = tomllib.loads(resources.files(__package__).joinpath(f"{name}.toml").read_text())
    return RevisionTemplate(
        name=str(data["name"]),
        version=str(data["version"]),
        critique=str(data["critique"]),
        revision=str(data["revision"]),
    )


def dialogue_messages(prompt: str) -> list[dict[str, str]]:
    """A prompt as chat messages: HH-RLHF's "\\n\\nHuman: ... \\n\\nAssistant: ..." turns, or
    one user message. The empty Assistant turn an HH prompt ends with is dropped."""
    parts = _TURN.split(prompt)
    if len(parts) == 1:
        return [{"role": "user", "content": prompt.strip()}]
    messages: list[dict[str, str]] = []
    if parts[0].strip():
        messages.append({"role": "user", "content": parts[0].strip()})
    for speaker, text in zip(parts[1::2], parts[2::2], strict=True):
        role, content = ("user" if speaker == "Human" else "assistant"), text.strip()
        if not content:
            continue
        if messages and messages[-1]["role"] == role:
            messages[-1]["content"] += "\n\n" + content
        else:
            messages.append({"role": role, "content": content})
    return messages or [{"role": "user", "content": prompt.strip()}]
