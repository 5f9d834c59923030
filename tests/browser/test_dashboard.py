"""The operator dashboard in a real browser: it shows the session that just ran, its
webhook deliveries with their attempts, usage by tier and the live worker."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Browser

from tests.browser.conftest import Played, Server

pytestmark = pytest.mark.slow


def test_the_dashboard_shows_the_session_that_just_ran(
    played: Played, server: Server, browser: Browser, screenshots: Path
) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{server.url}/dashboard")
    page.fill("#operator-key", server.operator_key)
    page.click("#open")
    row = page.locator("#sessions tr", has_text=played.session_id)
    row.wait_for(timeout=10_000)
    cells = row.locator("td").all_inner_texts()
    assert cells[2:5] == ["ended", "av_stock_001", "mock"], cells
    assert cells[6].endswith(" ms"), cells  # time to first frame, from the projection
    # Its webhooks: the receiver refuses each first attempt, so every delivery shows two.
    delivery = page.locator("#deliveries tr", has_text=played.session_id).first
    delivery.wait_for(timeout=10_000)
    page.locator("#deliveries tr", has_text="#2 200 delivered").first.wait_for(timeout=10_000)
    assert "#1 503 retrying" in page.inner_text("#deliveries")
    assert "mock" in page.inner_text("#usage-legend")
    assert "live" in page.inner_text("#workers")
    page.screenshot(path=screenshots / "dashboard.png", full_page=True)
    # Filtering by another status hides it.
    page.select_option("#status-filter", "failed")
    row.wait_for(state="detached", timeout=5_000)
    page.close()


def test_a_wrong_operator_key_shows_no_data(server: Server, browser: Browser) -> None:
    page = browser.new_page()
    page.goto(f"{server.url}/dashboard")
    page.fill("#operator-key", server.dev_key)  # an API key is not the operator key
    page.click("#open")
    page.wait_for_function("document.getElementById('key-status').textContent !== ''")
    assert "not valid" in page.inner_text("#key-status")
    assert page.locator("#sessions-panel").is_hidden()
    page.close()
