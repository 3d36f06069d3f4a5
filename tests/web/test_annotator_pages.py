"""The annotator's page in a real browser: label with the keyboard; the labels are in the API."""

from __future__ import annotations

import time
from typing import Any

import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import Page, expect

from tests.conftest import Keys
from tests.service.helpers import import_rows, lease, make_project, submit
from tests.web.conftest import NARROW, Shots, sign_in

PAIRS = [
    {
        "external_id": f"pair-{n}",
        "prompt": f"Question {n}: how do I sort a list in Python?",
        "responses": [
            f"Use `sorted(xs)`:\n\n```python\nprint(sorted([3, 1, 2]))\n```\nAnswer {n}.",
            f"**No idea.** Try a search engine. Answer {n}.",
        ],
    }
    for n in range(3)
]
INSTRUCTIONS = "Pick the **more helpful** reply."

pytestmark = [pytest.mark.integration]  # a real server and a real browser


def _labels(client: TestClient, keys: Keys, project_id: int) -> dict[str, list[dict[str, Any]]]:
    """Each item's labels (external id -> labels), through the API."""
    items = client.get(f"/v1/projects/{project_id}/items", headers=Keys.auth(keys.operator)).json()[
        "data"
    ]
    return {item["external_id"]: item["labels"] for item in items}


def _open_project(page: Page, server: str, key: str, project_id: int) -> None:
    sign_in(page, server, key)
    page.goto(f"{server}/ui/annotate?project={project_id}")
    expect(page.locator("#prompt-heading")).to_be_focused()


def test_an_annotator_labels_pairs_with_the_keyboard_and_the_labels_reach_the_api(
    page: Page, server: str, client: TestClient, keys: Keys, shot: Shots
) -> None:
    project_id = make_project(client, keys, "pairwise", instructions=INSTRUCTIONS)
    assert import_rows(client, keys, project_id, PAIRS).status_code == 201
    sign_in(page, server, keys.annotator)
    page.get_by_role("link").filter(has_text="p-pairwise").click()
    expect(page.locator("#progress")).to_have_text("0 done · 3 remaining")
    expect(page.locator("#instructions strong")).to_have_text("more helpful")
    expect(page.locator(".response pre code").first).to_contain_text("print(sorted([3, 1, 2]))")
    shot(page, "pairwise")

    page.keyboard.press("a")
    page.keyboard.press("2")
    page.keyboard.press("r")
    page.keyboard.type("A shows working code.")
    page.keyboard.press("Control+Enter")
    expect(page.locator("#progress")).to_have_text("1 done · 2 remaining")
    page.keyboard.press("b")
    page.keyboard.press("Enter")
    expect(page.locator("#progress")).to_have_text("2 done · 1 remaining")
    page.keyboard.press("t")
    page.keyboard.press("3")  # no strength for a tie: ignored
    page.keyboard.press("Enter")
    expect(page.locator("#done")).to_be_visible()
    expect(page.locator("#progress")).to_have_text("3 done · 0 remaining")
    shot(page, "done")

    labels = _labels(client, keys, project_id)
    values = sorted(
        (lb["value"]["choice"], lb["value"]["strength"], lb["rationale"])
        for item in labels.values()
        for lb in item
    )
    assert values == [("a", 2, "A shows working code."), ("b", None, None), ("tie", None, None)]


def test_submitting_without_a_choice_says_what_is_missing(
    page: Page, server: str, client: TestClient, keys: Keys
) -> None:
    project_id = make_project(client, keys, "pairwise")
    assert import_rows(client, keys, project_id, PAIRS[:1]).status_code == 201
    _open_project(page, server, keys.annotator, project_id)
    page.keyboard.press("Enter")
    expect(page.locator("#status")).to_have_text("Choose A, B or tie first.")
    expect(page.get_by_role("radio", name="A is better")).to_be_focused()
    assert all(not item for item in _labels(client, keys, project_id).values())


def test_a_ranking_is_built_with_the_keyboard_and_by_dragging(
    page: Page, server: str, client: TestClient, keys: Keys, shot: Shots
) -> None:
    project_id = make_project(client, keys, "listwise")
    rows = [
        {
            "external_id": "list",
            "prompt": "Rank the colours.",
            "responses": ["Red", "Green", "Blue"],
        }
    ]
    assert import_rows(client, keys, project_id, rows).status_code == 201
    _open_project(page, server, keys.annotator, project_id)
    ranked = page.locator("li.ranked")
    expect(ranked).to_have_count(3)
    ranked.nth(2).focus()  # Blue
    page.keyboard.press("Alt+ArrowUp")
    page.keyboard.press("k")  # Blue is first now, and keeps the focus
    expect(ranked.nth(0)).to_contain_text("Blue")
    expect(ranked.nth(0)).to_be_focused()
    ranked.nth(2).drag_to(ranked.nth(1))  # Green onto Red's place: Blue, Green, Red
    ranked.nth(2).focus()
    page.keyboard.press("=")  # Red ties with Green
    shot(page, "ranking")
    page.keyboard.press("Enter")
    expect(page.locator("#done")).to_be_visible()

    [label] = _labels(client, keys, project_id)["list"]
    items = client.get(f"/v1/projects/{project_id}/items", headers=Keys.auth(keys.operator)).json()[
        "data"
    ]
    ids = {r["text"]: r["id"] for r in items[0]["responses"]}
    groups = [sorted(g) if isinstance(g, list) else [g] for g in label["value"]["ranking"]]
    assert groups == [[ids["Blue"]], sorted([ids["Green"], ids["Red"]])]


def test_thumbs_up_and_down_and_skip_with_the_keyboard(
    page: Page, server: str, client: TestClient, keys: Keys
) -> None:
    project_id = make_project(client, keys, "binary")
    rows = [
        {"external_id": f"one-{n}", "prompt": f"Say hi {n}.", "responses": [f"Hi {n}!"]}
        for n in range(3)
    ]
    assert import_rows(client, keys, project_id, rows).status_code == 201
    _open_project(page, server, keys.annotator, project_id)
    page.keyboard.press("u")
    page.keyboard.press("Enter")
    expect(page.locator("#progress")).to_have_text("1 done · 2 remaining")
    page.keyboard.press("d")
    page.keyboard.press("Enter")
    expect(page.locator("#progress")).to_have_text("2 done · 1 remaining")
    page.keyboard.press("s")
    expect(page.locator("#done")).to_be_visible()
    ratings = sorted(
        lb["value"]["rating"] for item in _labels(client, keys, project_id).values() for lb in item
    )
    assert ratings == ["down", "up"]


def test_an_expired_lease_is_explained_and_the_next_item_is_one_key_away(
    page: Page, server: str, client: TestClient, keys: Keys, shot: Shots
) -> None:
    project_id = make_project(client, keys, "pairwise", lease_seconds=5)
    assert import_rows(client, keys, project_id, PAIRS[:2]).status_code == 201
    _open_project(page, server, keys.annotator, project_id)
    held = page.locator("#prompt").inner_text()
    time.sleep(6)  # the lease runs out; another annotator takes the item and labels it
    taken = lease(client, keys.annotator2, project_id).json()
    assert taken["item"]["prompt"] == held
    assert (
        submit(
            client, keys.annotator2, taken["id"], {"kind": "pairwise", "choice": "a"}
        ).status_code
        == 201
    )
    page.keyboard.press("a")
    page.keyboard.press("Enter")
    expect(page.locator("#expired")).to_be_visible()
    expect(page.locator("#expired-message")).to_contain_text("lease expired")
    shot(page, "expired")
    page.keyboard.press("n")
    expect(page.locator("#item")).to_be_visible()
    assert page.locator("#prompt").inner_text() != held


def test_imported_text_is_shown_as_text_and_never_runs(
    page: Page, server: str, client: TestClient, keys: Keys, shot: Shots
) -> None:
    hostile = [
        '<script>window.__pwned = "script"</script>',
        "<img src=x onerror=\"window.__pwned = 'img'\"> [click](javascript:window.__pwned=1)",
    ]
    project_id = make_project(
        client, keys, "pairwise", instructions="<b onmouseover=alert(1)>hi</b>"
    )
    rows = [{"prompt": "<iframe src=//evil></iframe> what?", "responses": hostile}]
    assert import_rows(client, keys, project_id, rows).status_code == 201
    _open_project(page, server, keys.annotator, project_id)
    expect(page.locator(".response").first).to_contain_text(
        '<script>window.__pwned = "script"</script>'
    )
    expect(page.locator("#prompt")).to_contain_text("<iframe src=//evil></iframe>")
    shot(page, "hostile")
    assert page.evaluate("window.__pwned") is None
    for tag in ("script", "img", "iframe", "b"):
        assert page.locator(f"main {tag}").count() == 0, tag
    assert page.locator("main a[href^='javascript']").count() == 0


def test_the_page_works_on_a_narrow_screen(
    page: Page, server: str, client: TestClient, keys: Keys, shot: Shots
) -> None:
    project_id = make_project(client, keys, "pairwise", instructions=INSTRUCTIONS)
    assert import_rows(client, keys, project_id, PAIRS[:1]).status_code == 201
    _open_project(page, server, keys.annotator, project_id)
    wide_a, wide_b = (page.locator(".response").nth(n).bounding_box() for n in (0, 1))
    assert wide_a and wide_b and wide_a["y"] == wide_b["y"]  # side by side at 1280x800
    page.set_viewport_size(NARROW)
    narrow_a, narrow_b = (page.locator(".response").nth(n).bounding_box() for n in (0, 1))
    assert narrow_a and narrow_b and narrow_b["y"] >= narrow_a["y"] + narrow_a["height"]
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    shot(page, "narrow")
    page.get_by_role("radio", name="B is better").check()
    page.get_by_role("button", name="Submit").click()
    expect(page.locator("#done")).to_be_visible()
