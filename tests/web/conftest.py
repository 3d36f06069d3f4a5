"""Browser tests: Debian's Chromium (/usr/bin/chromium), headless, driven by Playwright
against a real `uvicorn` serving the app on a test database. Each test saves screenshots
under out/screenshots/."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Playwright, sync_playwright

from tests.conftest import Keys
from tests.service.live_server import live_server

CHROMIUM = os.environ.get("ARBITER_TEST_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "out" / "screenshots"
# The machine's network is closed: without these, Chromium keeps trying to reach Google.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WIDE = {"width": 1280, "height": 800}
NARROW = {"width": 390, "height": 844}


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    """Playwright's driver (it downloads no browser: the tests use Debian's)."""
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    """One headless Chromium for the session."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: `make test` installs Debian's chromium package")
    chromium = playwright.chromium.launch(
        executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
    )
    yield chromium
    chromium.close()


@pytest.fixture
def server(db_url: str, keys: Keys) -> Iterator[str]:
    """The app served by a real server process on the test database; its base URL."""
    with live_server(db_url, workers=1, ARBITER_AUTH_CACHE_SECONDS="0") as base:
        yield base


class Shots:
    """Screenshots of the current test, numbered in the order taken."""

    def __init__(self, name: str) -> None:
        self.name = re.sub(r"[^A-Za-z0-9_.-]+", "-", name)
        self.count = 0
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def __call__(self, page: Page, label: str) -> Path:
        self.count += 1
        path = SCREENSHOTS / f"{self.name}-{self.count:02d}-{label}.png"
        page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture
def shot(request: pytest.FixtureRequest) -> Shots:
    """Take a named screenshot of a page."""
    return Shots(request.node.name)


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh browser tab at 1280x800; console errors fail the test."""
    context = browser.new_context(viewport=WIDE)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    yield tab
    context.close()
    assert not [e for e in errors if "status of 4" not in e], errors


def sign_in(page: Page, base: str, key: str) -> None:
    """Sign in on the sign-in page with the keyboard."""
    page.goto(f"{base}/ui/")
    page.keyboard.type(key)  # the key field has the focus
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r".*/ui/(annotate|projects).*"))
