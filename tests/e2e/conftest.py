"""Browser tests: Debian's Chromium driven by Playwright against pytest-django's live server."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, Playwright, expect, sync_playwright

from portal.core.models import User
from tests.conftest import PASSWORD
from tests.integration.registry import Registry, point_portal_at, start_registry

# Playwright's sync API runs an event loop in the test thread; Django's ORM refuses to run
# inside one unless told that this (single-threaded test) use is safe.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Generous waits: CI machines are busy, and every expectation still fails when the page is wrong.
expect.set_options(timeout=15_000)
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-output" / "screenshots"


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    """One Playwright driver for the session."""
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    """Debian's Chromium; a missing binary fails the tests instead of skipping them."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium package")
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@pytest.fixture
def plain_http(settings) -> None:
    """The live server speaks plain HTTP, so the session and CSRF cookies must not be Secure-only."""
    settings.SESSION_COOKIE_SECURE = False
    settings.CSRF_COOKIE_SECURE = False


@pytest.fixture
def page(request: pytest.FixtureRequest, browser: Browser, live_server, plain_http) -> Iterator[Page]:
    """A fresh browser page at 1280x800; its screenshot is saved when the test ends, passed or failed."""
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 800})
    context.set_default_timeout(15_000)
    page = context.new_page()
    # Chromium reports every script, style or eval the Content-Security-Policy refused on the console.
    refused: list[str] = []
    page.on(
        "console", lambda message: refused.append(message.text) if "Content Security Policy" in message.text else None
    )
    yield page
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
    context.close()
    assert not refused, "the page broke its Content-Security-Policy:\n" + "\n".join(refused)


@pytest.fixture(params=[1440, 800], ids=["1440px", "800px"])
def width(request: pytest.FixtureRequest, page: Page) -> int:
    """The browser window's width for a test that runs at a desktop and a narrow width (both run)."""
    page.set_viewport_size({"width": request.param, "height": 900})
    return request.param


@pytest.fixture
def admin(transactional_db) -> User:
    """A Management Portal administrator to log in as."""
    return User.objects.create_user("e2e-admin", password=PASSWORD, is_portal_admin=True)


class Portal:
    """Thin helpers for the pages the tests drive."""

    def __init__(self, page: Page) -> None:
        self.page = page

    def log_in(self, username: str, password: str = PASSWORD) -> None:
        """Log in through the login page and land on Home."""
        self.page.goto("/login/")
        self.page.get_by_label("User name").fill(username)
        self.page.get_by_label("Password").fill(password)
        self.page.get_by_role("button", name="Log in").click()
        expect(self.page.get_by_role("heading", name="Home")).to_be_visible()

    def open_nav(self, item: str) -> None:
        """Follow one item of the left navigation."""
        self.page.get_by_role("navigation", name="Main").get_by_role("link", name=item, exact=True).click()

    def dialog(self):
        """The open modal dialog."""
        dialog = self.page.get_by_role("dialog")
        expect(dialog).to_be_visible()
        # htmx binds the new content's hx-* attributes when the swap settles: typing into a search field before
        # that sends no request (seen once under load: the member search never answered).
        self.page.wait_for_function("() => !document.querySelector('.htmx-swapping, .htmx-settling, .htmx-added')")
        return dialog

    def expect_message(self, text: str) -> None:
        """A page message (success or error) with this text is shown."""
        expect(self.page.locator("#messages")).to_contain_text(text)


@pytest.fixture
def portal(page: Page) -> Portal:
    """Page helpers bound to the test's browser page."""
    return Portal(page)


@pytest.fixture(scope="module")
def registry(live_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A real docker-registry that sends its push, pull and delete events to the live server's receiver (tests whose
    registry sends nothing define their own)."""
    server = start_registry(tmp_path_factory.mktemp("registry"), notify_url=live_server.url + "/service/notifications")
    yield server
    server.stop()


@pytest.fixture
def wired(settings: Any, registry: Registry) -> Registry:
    """The portal (and so the live server) talking to the test registry; its tasks (applying the registry's
    events, GC) run in the live server's own process, as no worker runs here."""
    settings.CELERY_TASK_ALWAYS_EAGER = True
    return point_portal_at(settings, registry)
