"""Headless Chromium (Debian's `chromium`, driven by Playwright) against a running strom.

`playwright install` cannot download a browser here, so the system's chromium is launched by
path; `make browser` installs it. Every page a test opens is watched: a request that leaves
strom's origin fails the test (see `Tab.outside`).
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, async_playwright

from tests.browser.tabs import Tabs
from tests.money.conftest import world  # noqa: F401  (a strom with a simulated charger)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail("chromium is not installed: run `make browser` (apt-get install chromium)")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=executable)
        yield launched
        await launched.close()


@pytest.fixture
async def tabs(world, browser: Browser) -> AsyncIterator[Tabs]:  # noqa: ANN001, F811
    """Pages on the `world`'s strom; closed before the server stops (SSE streams end first)."""
    opened = Tabs(browser, world.app.http_url)
    yield opened
    await opened.close()
