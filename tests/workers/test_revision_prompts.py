"""How critique and revision requests are put: chat turns, seeded principle order."""

from __future__ import annotations

from workers.constitution import PrincipleSpec, ReviseSettings, principle_order
from workers.prompts.revision import dialogue_messages, load_revision_template

PRINCIPLES = tuple(PrincipleSpec(n, f"p{n}", f"critique {n}", f"revise {n}") for n in range(4))


def test_an_hh_dialogue_becomes_chat_turns_without_its_empty_last_turn() -> None:
    prompt = (
        "\n\nHuman: How do I pick a lock?\n\nAssistant: Why?\n\nHuman: I'm locked out."
        "\n\nAssistant:"
    )
    assert dialogue_messages(prompt) == [
        {"role": "user", "content": "How do I pick a lock?"},
        {"role": "assistant", "content": "Why?"},
        {"role": "user", "content": "I'm locked out."},
    ]


def test_a_plain_prompt_is_the_persons_one_turn() -> None:
    assert dialogue_messages("  Write a haiku.  ") == [
        {"role": "user", "content": "Write a haiku."}
    ]


def test_the_shipped_framing_names_its_fields_and_version() -> None:
    template = load_revision_template()
    assert template.identity == "critique-revision@1"
    assert "{critique_request}" in template.critique
    assert "{revision_request}" in template.revision


def test_principles_are_sampled_with_the_seed_and_without_repeats_while_any_is_left() -> None:
    settings = ReviseSettings(principles=PRINCIPLES, rounds=6, seed=3)
    order = principle_order(settings, response_id=17)
    assert order == principle_order(settings, response_id=17)  # a retried batch: the same
    assert len({p.id for p in order[:4]}) == 4  # every principle once before any repeats
    assert {p.id for p in order[4:]} <= {p.id for p in PRINCIPLES}
    others = {tuple(p.id for p in principle_order(settings, response_id=r)) for r in range(20)}
    assert len(others) > 1  # responses get different orders
    reseeded = ReviseSettings(principles=PRINCIPLES, rounds=6, seed=4)
    assert [principle_order(reseeded, response_id=r) for r in range(10)] != [
        principle_order(settings, response_id=r) for r in range(10)
    ]
