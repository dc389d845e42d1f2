"""Fixtures for the web page: Debian's Chromium driven by Playwright, against a real ``alerts serve``.

``browser`` is one Chromium for the session (``executable_path``: Playwright's own download is not
reachable here; ``.ci/run`` installs the ``chromium`` package, and this fixture tries ``apt-get`` once if it
is missing). ``page`` is a fresh browser context per test whose console errors and uncaught page errors
fail the test; ``shot(page, name)`` writes a screenshot to ``tests/web/screenshots/`` (not committed).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

# The server's fixtures (the in-process app, users, a real ``alerts serve``) serve the page's tests too.
from server.conftest import app, client, live_server, make_user, server_clock, server_store  # noqa: F401

SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"


def chromium_path() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None and os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "-q", "chromium"], capture_output=True, timeout=900)
        found = shutil.which("chromium")
    if found is None:
        pytest.fail("Debian's chromium is needed for the web page's tests: apt-get install chromium")
    return found


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
        yield chromium
        chromium.close()


class ConsoleWatch:
    """The console errors and uncaught exceptions of a page: a test fails on any."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def attach(self, page) -> None:
        page.on("console", lambda msg: self.errors.append(f"console.{msg.type}: {msg.text}")
                if msg.type == "error" else None)
        page.on("pageerror", lambda exc: self.errors.append(f"page error: {exc}"))


@pytest.fixture
def console() -> ConsoleWatch:
    return ConsoleWatch()


@pytest.fixture
def new_page(browser, console):
    """``new_page()`` opens a page in a browser context of its own (its own cookies: another user)."""
    contexts = []

    def open_page(**context_options):
        context = browser.new_context(**context_options)
        context.set_default_timeout(15_000)
        contexts.append(context)
        page = context.new_page()
        console.attach(page)
        return page

    yield open_page
    for context in contexts:
        context.close()
    assert console.errors == [], f"the browser reported errors: {console.errors}"


@pytest.fixture
def page(new_page):
    return new_page()


def shot(page, name: str) -> Path:
    """A full-page screenshot of ``page`` as ``tests/web/screenshots/NAME.png``."""
    SCREENSHOTS.mkdir(exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def sign_in(page, base_url: str, key: str, then: str = "/inbox") -> None:
    """Sign ``page`` in with ``key`` through the sign-in form, landing on ``then``."""
    page.goto(f"{base_url}/login?next={then}")
    page.fill("#key", key)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base_url}{then}*")
