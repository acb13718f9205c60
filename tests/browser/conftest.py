"""The browser the admin tests drive: Debian's Chromium through Playwright (never a downloaded one)."""

import shutil

import pytest
from django.db import connections

CHROMIUM = shutil.which("chromium")


@pytest.fixture
def browser_page(live_server, monkeypatch, migrated_roles_restored):
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium; .ci/run installs it)")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the test's own ORM reads are
    # still synchronous and safe.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(15_000)
        yield page
        browser.close()
        # Inside Playwright's event loop Django keys connections by context: the ones the
        # test opened here are closed here, or PostgreSQL cannot drop the test database.
        connections.close_all()
