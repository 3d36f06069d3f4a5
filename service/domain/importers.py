"""JSONL line formats: each parser turns one decoded line into a Record or raises LineError.

Pure functions, no database: `imports.py` runs them over a file and writes the records.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from service.models import FeedbackKind

HH_ASSISTANT = "\n\nAssistant:"
MAX_RESPONSES = 50


class LineError(Exception):
    """A line that cannot be imported, naming the field at fault."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


@dataclass
class Record:
    """One item to create: its prompt, responses (text, source) in order, and an optional label."""

    prompt: str
    responses: list[tuple[str, str]]
    external_id: str | None = None
    tags: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    label: dict[str, Any] | None = None


def _string(line: dict[str, Any], name: str, *, allow_empty: bool = True) -> str:
    if name not in line:
        raise LineError(f"missing field {name!r}", name)
    value = line[name]
    if not isinstance(value, str):
        kind = (
            "a list (conversational format is not supported)"
            if isinstance(value, list)
            else type(value).__name__
        )
        raise LineError(f"{name!r} must be a string, got {kind}", name)
    if "\x00" in value:
        raise LineError(f"{name!r} must not contain NUL characters", name)
    if not allow_empty and not value.strip():
        raise LineError(f"{name!r} must not be empty", name)
    return value


def _common(line: dict[str, Any]) -> dict[str, Any]:
    external_id = line.get("external_id", line.get("id"))
    if external_id is not None and not isinstance(external_id, str | int):
        raise LineError("'external_id' must be a string or an integer", "external_id")
    tags = line.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise LineError("'tags' must be a list of strings", "tags")
    metadata = line.get("metadata", {})
    if not isinstance(metadata, dict):
        raise LineError("'metadata' must be an object", "metadata")
    for name, value in (("external_id", external_id), ("tags", tags), ("metadata", metadata)):
        # PostgreSQL cannot store NUL in text or JSON (it would fail the whole batch).
        if b"\\u0000" in orjson.dumps(value):
            raise LineError(f"{name!r} must not contain NUL characters", name)
    return {
        "external_id": None if external_id is None else str(external_id)[:200],
        "tags": tags,
        "metadata": metadata,
    }


def _a_first(prompt: str, first: str, second: str) -> bool:
    """Whether `first` goes in position A: a stable coin flip, so imports carry no position bias."""
    digest = hashlib.sha256(f"{prompt}\x00{first}\x00{second}".encode()).digest()
    return digest[0] % 2 == 0


def _pair(prompt: str, chosen: str, rejected: str, source: str, extra: dict[str, Any]) -> Record:
    chosen_first = _a_first(prompt, chosen, rejected)
    ordered = [chosen, rejected] if chosen_first else [rejected, chosen]
    return Record(
        prompt=prompt,
        responses=[(text, source) for text in ordered],
        label={"choice": "a" if chosen_first else "b", "strength": None},
        **extra,
    )


def parse_trl_preference(line: dict[str, Any]) -> Record:
    """TRL's preference format: prompt, chosen, rejected (the preference becomes a label)."""
    prompt = _string(line, "prompt", allow_empty=False)
    chosen, rejected = _string(line, "chosen"), _string(line, "rejected")
    return _pair(prompt, chosen, rejected, "dataset", _common(line))


def split_hh_dialogue(chosen: str, rejected: str) -> tuple[str, str, str]:
    """Split HH-RLHF dialogues into (shared prompt ending in 'Assistant:', chosen, rejected)."""
    cut_c, cut_r = chosen.rfind(HH_ASSISTANT), rejected.rfind(HH_ASSISTANT)
    if cut_c < 0:
        raise LineError("'chosen' has no '\\n\\nAssistant:' turn", "chosen")
    if cut_r < 0:
        raise LineError("'rejected' has no '\\n\\nAssistant:' turn", "rejected")
    end_c, end_r = cut_c + len(HH_ASSISTANT), cut_r + len(HH_ASSISTANT)
    if chosen[:end_c] != rejected[:end_r]:
        raise LineError(
            "'chosen' and 'rejected' do not share the dialogue before the final Assistant turn",
            "rejected",
        )
    # Responses keep their leading space: prompt + response is the original dialogue, which
    # TRL's reward trainer rebuilds by concatenation.
    return chosen[:end_c], chosen[end_c:], rejected[end_r:]


def parse_hh_rlhf(line: dict[str, Any]) -> Record:
    """Anthropic HH-RLHF: two whole dialogues that differ only in the last Assistant turn."""
    prompt, chosen, rejected = split_hh_dialogue(_string(line, "chosen"), _string(line, "rejected"))
    return _pair(prompt, chosen, rejected, "hh-rlhf", _common(line))


def parse_trl_kto(line: dict[str, Any]) -> Record:
    """TRL's unpaired preference format: prompt, completion, label (true = desirable)."""
    prompt = _string(line, "prompt", allow_empty=False)
    completion = _string(line, "completion")
    if "label" not in line:
        raise LineError("missing field 'label'", "label")
    if not isinstance(line["label"], bool):
        raise LineError("'label' must be true or false", "label")
    rating = "up" if line["label"] else "down"
    return Record(
        prompt=prompt,
        responses=[(completion, "dataset")],
        label={"rating": rating},
        **_common(line),
    )


def parse_arbiter(line: dict[str, Any]) -> Record:
    """Arbiter's own format: prompt, responses (strings or {text, source}), optional id/tags."""
    prompt = _string(line, "prompt", allow_empty=False)
    raw = line.get("responses")
    if not isinstance(raw, list) or not raw:
        raise LineError("'responses' must be a non-empty list", "responses")
    responses: list[tuple[str, str]] = []
    for n, entry in enumerate(raw):
        if isinstance(entry, str):
            if "\x00" in entry:
                raise LineError(
                    f"'responses[{n}]' must not contain NUL characters", f"responses[{n}]"
                )
            responses.append((entry, "unknown"))
        elif isinstance(entry, dict) and isinstance(entry.get("text"), str):
            source = entry.get("source", "unknown")
            if not isinstance(source, str):
                raise LineError(
                    f"'responses[{n}].source' must be a string", f"responses[{n}].source"
                )
            if "\x00" in source + entry["text"]:
                raise LineError(
                    f"'responses[{n}]' must not contain NUL characters", f"responses[{n}]"
                )
            responses.append((entry["text"], source[:200]))
        else:
            raise LineError(
                f"'responses[{n}]' must be a string or an object with 'text'", f"responses[{n}]"
            )
    return Record(prompt=prompt, responses=responses, **_common(line))


PARSERS: dict[str, Callable[[dict[str, Any]], Record]] = {
    "arbiter": parse_arbiter,
    "trl-preference": parse_trl_preference,
    "trl-kto": parse_trl_kto,
    "hh-rlhf": parse_hh_rlhf,
}

# Which project kinds each format can fill (None: any, checked per line by response count).
FORMAT_KINDS: dict[str, set[FeedbackKind] | None] = {
    "arbiter": None,
    "trl-preference": {FeedbackKind.pairwise},
    "hh-rlhf": {FeedbackKind.pairwise},
    "trl-kto": {FeedbackKind.binary},
}


def check_shape(record: Record, kind: FeedbackKind) -> None:
    """Raise LineError unless the record's response count fits the project's feedback kind."""
    n = len(record.responses)
    if kind == FeedbackKind.pairwise and n != 2:
        raise LineError(f"a pairwise project needs exactly 2 responses, got {n}", "responses")
    if kind == FeedbackKind.binary and n != 1:
        raise LineError(f"a binary project needs exactly 1 response, got {n}", "responses")
    if kind == FeedbackKind.listwise and not 2 <= n <= MAX_RESPONSES:
        raise LineError(
            f"a listwise project needs 2 to {MAX_RESPONSES} responses, got {n}", "responses"
        )
