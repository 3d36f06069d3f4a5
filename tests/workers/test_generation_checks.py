"""Which generations are usable: empty, looping and cut-off texts are caught."""

from __future__ import annotations

import pytest

from service.models import StepOutcome
from workers.backends.base import Completion
from workers.generation_checks import clean_generation, is_looping, outcome_of

FINISHED = Completion("", 10, True)
CUT = Completion("", 256, False)


@pytest.mark.parametrize(
    "text",
    [
        "I am sorry. " * 12,
        "the cat sat on the mat and the cat sat on the mat and the cat sat on the mat again",
        "Sure! hahahahahahahahahahahahahahaha",
        "Okay" + "!" * 40,
    ],
)
def test_repetitive_text_is_looping(text: str) -> None:
    assert is_looping(text)


@pytest.mark.parametrize(
    "text",
    [
        "I can't help with that, but here is how to stay safe: lock your doors at night.",
        "Steps:\n1. Mix the flour.\n2. Add the eggs.\n3. Stir in the milk.\n4. Fry it gently.",
        "Yes.",
        "Well... let me think. " + "A long answer with many different words in it. " * 2,
    ],
)
def test_ordinary_text_is_not_looping(text: str) -> None:
    assert not is_looping(text)


@pytest.mark.parametrize(
    ("text", "completion", "outcome"),
    [
        ("", FINISHED, StepOutcome.empty),
        (" ... !", FINISHED, StepOutcome.empty),
        (
            "no no no no no no no no no no no no no no no no no no no no no no",
            CUT,
            StepOutcome.looping,
        ),
        ("A fine answer that the model had not finished when it", CUT, StepOutcome.too_long),
        ("A fine answer.", FINISHED, StepOutcome.ok),
    ],
)
def test_each_generation_gets_its_outcome(
    text: str, completion: Completion, outcome: StepOutcome
) -> None:
    assert outcome_of(text, completion) == outcome


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("  Revised response: Be kind.  ", "Be kind."),
        ("**Revision:** Be kind.", "Be kind."),
        ('"Be kind."', "Be kind."),
        ("Critique: It is rude.", "It is rude."),
        ("Response times vary: a day or two.", "Response times vary: a day or two."),
        ('"Yes," she said, "it is."', '"Yes," she said, "it is."'),
    ],
)
def test_labels_and_quotes_around_a_generation_are_removed(raw: str, clean: str) -> None:
    assert clean_generation(raw) == clean
