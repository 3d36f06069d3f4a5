"""Is a generation usable? Empty, looping and cut-off texts are caught here, so that they are
recorded as such and never stored as revisions.

- empty: nothing but whitespace and punctuation;
- looping: the same few words over and over (most word trigrams repeats), or a short unit
  repeated back to back over a large part of the text ("ha ha ha ...", "!!!!...");
- too_long: the model had not ended its turn when it reached the step's token limit.
"""

from __future__ import annotations

import re

from service.models import StepOutcome
from workers.backends.base import Completion

_WORD = re.compile(r"\w")
_PERIODIC = re.compile(r"(.{1,40}?)\1{4,}", re.S)  # a unit repeated five or more times in a row
# Labels small models put before the text they were asked for.
_LEADING_LABEL = re.compile(
    r"^\s*(?:\*\*)?(?:here is the )?(?:revised|rewritten|improved|new)?\s*"
    r"(?:response|reply|revision|rewrite|critique)(?:\*\*)?\s*:\s*(?:\*\*)?\s*",
    re.IGNORECASE,
)
_QUOTES = {'"': '"', "'": "'", "\u201c": "\u201d"}

MIN_WORDS_FOR_REPEATS = 20
MIN_DISTINCT_TRIGRAMS = 0.5
MIN_PERIODIC_CHARS = 24


def is_looping(text: str) -> bool:
    """Whether the text repeats itself: mostly repeated word trigrams, or a short unit
    repeated back to back over at least a third of the text."""
    words = text.lower().split()
    if len(words) >= MIN_WORDS_FOR_REPEATS:
        trigrams = list(zip(words, words[1:], words[2:], strict=False))
        if len(set(trigrams)) < MIN_DISTINCT_TRIGRAMS * len(trigrams):
            return True
    stripped = text.strip()
    for match in _PERIODIC.finditer(stripped):
        span = len(match.group(0))
        if span >= MIN_PERIODIC_CHARS and 3 * span >= len(stripped):
            return True
    return False


def clean_generation(text: str) -> str:
    """The text without surrounding whitespace, a leading label ("Revision:") or wrapping quotes."""
    text = _LEADING_LABEL.sub("", text.strip(), count=1).strip()
    inner = text[1:-1]
    quoted = len(text) >= 2 and _QUOTES.get(text[0]) == text[-1]
    if quoted and text[0] not in inner and text[-1] not in inner:  # one quotation, all of it
        text = inner.strip()
    return text


def outcome_of(text: str, completion: Completion) -> StepOutcome:
    """Whether a (cleaned) generation is usable, and if not, why."""
    if not _WORD.search(text):
        return StepOutcome.empty
    if is_looping(text):
        return StepOutcome.looping
    if not completion.finished:
        return StepOutcome.too_long
    return StepOutcome.ok
