"""Accessibility basics on every page: each control has a name, the keyboard reaches every
control, and nothing spills sideways at 1280x800 or on a narrow screen."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import Page

from tests.conftest import Keys, TinyModels
from tests.service.helpers import import_rows, make_project
from tests.web.conftest import NARROW, WIDE, Shots, sign_in
from tests.workers.judging import LISTS, PAIRS, start_job

# Marks every visible control; returns those without an accessible name.
UNNAMED = """() => {
  const controls = [...document.querySelectorAll(
    "button, input, select, textarea, a[href], summary, [tabindex]:not([tabindex='-1'])")]
    .filter((e) => e.getClientRects().length > 0);  // rendered, not hidden
  controls.forEach((e, n) => { e.dataset.control = String(n); });
  const named = (e) => (e.getAttribute("aria-label") || "").trim()
    || [...(e.labels || [])].map((l) => l.textContent).join("").trim()
    || (e.closest("label")?.textContent || "").trim()
    || (["INPUT", "SELECT", "TEXTAREA"].includes(e.tagName) ? "" : e.textContent.trim());
  return controls.filter((e) => !named(e)).map((e) => e.outerHTML.slice(0, 120));
}"""
# The control that has the focus now, as [data-control, radio group name or null].
FOCUSED = """() => {
  const e = document.activeElement;
  return [e?.dataset?.control ?? null, e?.type === "radio" ? e.name : null];
}"""
# Every marked control, as [data-control, radio group name or null].
MARKED = """() => [...document.querySelectorAll("[data-control]")]
  .filter((e) => !e.disabled)
  .map((e) => [e.dataset.control, e.type === "radio" ? e.name : null])"""

pytestmark = [pytest.mark.integration]  # a real server and a real browser


def _tab_through(page: Page) -> set[str]:
    """Press Tab until the focus comes round again; which controls (or radio groups) got it."""
    reached: set[str] = set()
    first = None
    for _ in range(120):
        page.keyboard.press("Tab")
        control, group = page.evaluate(FOCUSED)
        if control is None:
            continue
        key = f"radio:{group}" if group else control
        if key == first:
            break
        first = first or key
        reached.add(key)
    return reached


def _check(page: Page, shot: Shots, label: str) -> None:
    page.wait_for_load_state("networkidle")
    assert page.evaluate(UNNAMED) == [], f"{label}: controls without a name"
    wanted = {f"radio:{g}" if g else c for c, g in page.evaluate(MARKED)}
    missing = wanted - _tab_through(page)
    assert not missing, f"{label}: the keyboard never reaches controls {sorted(missing)}"
    for size in (WIDE, NARROW):
        page.set_viewport_size(size)
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{label} at {size}: {overflow}px wider than the screen"
    shot(page, f"{label}-narrow")
    page.set_viewport_size(WIDE)


@pytest.fixture
def world(client: TestClient, keys: Keys, tiny_models: TinyModels) -> dict[str, Any]:
    pairwise = make_project(client, keys, "pairwise", instructions="Be **kind**.")
    listwise = make_project(client, keys, "listwise")
    assert import_rows(client, keys, pairwise, PAIRS[:2]).status_code == 201
    assert import_rows(client, keys, listwise, LISTS[:1]).status_code == 201
    start_job(client, keys, pairwise, model=str(tiny_models.causal_lm))
    return {"pairwise": pairwise, "listwise": listwise}


def test_every_page_is_labelled_keyboard_reachable_and_fits_the_screen(
    page: Page, server: str, keys: Keys, world: dict[str, Any], shot: Shots
) -> None:
    page.goto(f"{server}/ui/")
    _check(page, shot, "signin")
    sign_in(page, server, keys.operator)
    pages = {
        "projects": "/ui/projects",
        "project": f"/ui/project?id={world['pairwise']}",
        "jobs": "/ui/jobs",
        "annotate-choose": "/ui/annotate",
        "annotate-pairwise": f"/ui/annotate?project={world['pairwise']}",
        "annotate-listwise": f"/ui/annotate?project={world['listwise']}",
    }
    for label, path in pages.items():
        page.goto(f"{server}{path}")
        _check(page, shot, label)
