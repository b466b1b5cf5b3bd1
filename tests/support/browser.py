"""A real browser for the report's tests: Debian's Chromium, headless, driven by Playwright.

Playwright's own browser download cannot work behind a closed network, so the browser is the system's
``chromium`` (``make test`` installs it when it is missing). A page is opened with every request that would
leave the file system refused and recorded, and every console message and page error recorded, so a test
can say the page needed nothing from the network and logged no error.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Route, sync_playwright

#: Flags that keep Chromium from reaching out on its own (updates, sync, safe browsing) on a closed network.
QUIET_FLAGS = [
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def chromium_path() -> str:
    """The Chromium to drive: ``$AUTOPICKER_CHROMIUM`` or ``chromium`` on the PATH. A missing one fails the
    test: the browser checks are part of the suite, not optional."""
    path = os.environ.get("AUTOPICKER_CHROMIUM") or shutil.which("chromium")
    if not path:
        pytest.fail("Chromium is not installed: `make test` installs Debian's chromium package when missing.")
    return path


@contextmanager
def chromium() -> Iterator[Browser]:
    """A headless Chromium for the duration of the block."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=QUIET_FLAGS)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class OpenedPage:
    """A page and what it did while loading: console messages, errors, and requests that left the disk."""

    page: Page
    console: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    outside: list[str] = field(default_factory=list)

    @property
    def console_errors(self) -> list[str]:
        return [text for text in self.console if text.startswith("error:")]


@contextmanager
def open_file(browser: Browser, path: Path, width: int = 1300) -> Iterator[OpenedPage]:
    """Open a local HTML file; any request for something not on the disk is refused and recorded."""
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    opened = OpenedPage(page)
    page.on("console", lambda message: opened.console.append(f"{message.type}: {message.text}"))
    page.on("pageerror", lambda error: opened.errors.append(str(error)))

    def route(route: Route) -> None:
        if route.request.url.startswith("file://"):
            route.continue_()
        else:
            opened.outside.append(route.request.url)
            route.abort()

    page.route("**/*", route)
    try:
        page.goto(path.as_uri(), wait_until="load")
        yield opened
    finally:
        context.close()
