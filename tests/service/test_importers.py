"""Line formats parse into records, naming the field at fault when they cannot."""

import pytest

from service.domain.importers import (
    LineError,
    parse_arbiter,
    parse_hh_rlhf,
    parse_trl_kto,
    parse_trl_preference,
    split_hh_dialogue,
)


def test_hh_dialogue_splits_into_shared_prompt_and_final_assistant_turns_that_rejoin() -> None:
    chosen = "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: joke?\n\nAssistant: Sure, here is one."
    rejected = "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: joke?\n\nAssistant: No."
    prompt, good, bad = split_hh_dialogue(chosen, rejected)
    assert (prompt, good, bad) == (
        "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: joke?\n\nAssistant:",
        " Sure, here is one.",
        " No.",
    )


def test_hh_dialogues_that_differ_before_the_last_turn_are_rejected() -> None:
    with pytest.raises(LineError) as err:
        split_hh_dialogue("\n\nHuman: a\n\nAssistant: x", "\n\nHuman: b\n\nAssistant: y")
    assert err.value.field == "rejected"


def test_preference_rows_keep_the_preference_as_a_label_on_a_shuffled_pair() -> None:
    records = [
        parse_trl_preference({"prompt": f"p{n}", "chosen": f"good{n}", "rejected": f"bad{n}"})
        for n in range(40)
    ]
    for record in records:
        winner = 0 if record.label == {"choice": "a", "strength": None} else 1
        assert record.responses[winner][0].startswith("good")
    assert {r.label["choice"] for r in records if r.label} == {"a", "b"}


def test_hh_records_are_tagged_with_their_source() -> None:
    record = parse_hh_rlhf(
        {"chosen": "\n\nHuman: q\n\nAssistant: a", "rejected": "\n\nHuman: q\n\nAssistant: b"}
    )
    assert {source for _, source in record.responses} == {"hh-rlhf"}


def test_kto_label_must_be_boolean() -> None:
    with pytest.raises(LineError) as err:
        parse_trl_kto({"prompt": "p", "completion": "c", "label": "yes"})
    assert err.value.field == "label"


def test_conversational_rows_are_rejected_with_a_clear_reason() -> None:
    with pytest.raises(LineError) as err:
        parse_trl_preference(
            {"prompt": [{"role": "user", "content": "hi"}], "chosen": "a", "rejected": "b"}
        )
    assert err.value.field == "prompt"
    assert "conversational" in err.value.message


def test_arbiter_responses_accept_strings_and_objects_with_source() -> None:
    record = parse_arbiter(
        {
            "prompt": "p",
            "responses": ["x", {"text": "y", "source": "gpt"}],
            "external_id": 7,
            "tags": ["t"],
        }
    )
    assert record.responses == [("x", "unknown"), ("y", "gpt")]
    assert (record.external_id, record.tags) == ("7", ["t"])


def test_a_missing_field_is_named() -> None:
    with pytest.raises(LineError) as err:
        parse_arbiter({"responses": ["x"]})
    assert err.value.field == "prompt"


def test_nul_characters_are_rejected_in_every_text_field() -> None:
    # PostgreSQL cannot store NUL in text: a line holding one must fail validation, not the insert.
    for line, field in [
        ({"prompt": "p\x00", "responses": ["x"]}, "prompt"),
        ({"prompt": "p", "responses": ["x\x00"]}, "responses[0]"),
        ({"prompt": "p", "responses": [{"text": "x", "source": "s\x00"}]}, "responses[0]"),
        ({"prompt": "p", "responses": ["x"], "tags": ["t\x00"]}, "tags"),
        ({"prompt": "p", "responses": ["x"], "metadata": {"k": "v\x00"}}, "metadata"),
    ]:
        with pytest.raises(LineError) as err:
            parse_arbiter(line)
        assert err.value.field == field, line
