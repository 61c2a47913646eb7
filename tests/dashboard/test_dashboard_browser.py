"""The dashboard in a real browser (headless Chromium through Playwright) against a live API.

Signs in through the form, waits for every panel, then checks what a person would: every chart
drew data points, every link of the retraining chains leads somewhere, nothing was logged to
the console, and every request the page made went to this server. The laptop-width view is
saved as a screenshot (to docs/images/dashboard.png with FG_UPDATE_SCREENSHOT=1, which refreshes
the picture the docs show; else to the test's temporary folder); the phone-width view must not
scroll sideways.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.dashboard.conftest import Seeded
from tests.serving.conftest import ADMIN_TOKEN, LiveApi

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCS_SCREENSHOT = REPO_ROOT / "docs" / "images" / "dashboard.png"
CHARTS = {
    "predictions",
    "alert_rate",
    "requests",
    "latency",
    "precision",
    "recall",
    "daily_precision",
    "psi",
    "outbox_backlog",
    "shipping_lag",
    "edge_share",
}


class PageLog:
    """Everything a page asked for or complained about."""

    def __init__(self, page: Any) -> None:
        self.requests: list[str] = []
        self.console_errors: list[str] = []
        page.on("request", lambda request: self.requests.append(request.url))
        page.on(
            "console",
            lambda message: (
                self.console_errors.append(message.text)
                if message.type in ("error", "warning")
                else None
            ),
        )
        page.on("pageerror", lambda error: self.console_errors.append(f"page error: {error}"))

    def foreign(self, base_url: str) -> list[str]:
        own = urlsplit(base_url).netloc
        return [
            url
            for url in self.requests
            if not url.startswith("data:") and urlsplit(url).netloc != own
        ]


def _sign_in(page: Any, base_url: str) -> None:
    page.goto(base_url + "/dashboard")
    assert page.url == base_url + "/dashboard/login"  # no session yet: the sign-in form
    page.fill("#token", ADMIN_TOKEN)
    page.click("button[type=submit]")
    page.wait_for_url(base_url + "/dashboard")
    _wait_loaded(page)


def _wait_loaded(page: Any) -> None:
    # A selector, not a JavaScript predicate: the page's CSP forbids the eval a predicate needs.
    page.wait_for_selector("body[data-loaded]", state="attached", timeout=30_000)


def _figures(page: Any) -> list[dict[str, Any]]:
    return page.eval_on_selector_all(
        "figure.chart",
        """els => els.map(e => ({
            id: e.dataset.chart,
            points: Number(e.dataset.points),
            canvas: !!e.querySelector('canvas'),
            empty: (e.querySelector('.empty') || {}).textContent || null,
            width: e.getBoundingClientRect().width,
        }))""",
    )


def test_the_seeded_dashboard_in_chromium(seeded: Seeded, chromium: Any, tmp_path: Path) -> None:
    base_url = seeded.api.url
    context = chromium.new_context(viewport={"width": 1366, "height": 900})
    page = context.new_page()
    log = PageLog(page)
    try:
        _sign_in(page, base_url)
        cookie = next(c for c in context.cookies() if c["name"] == "fg_dashboard")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        assert page.evaluate("document.cookie") == ""  # invisible to scripts

        figures = _figures(page)
        assert {f["id"] for f in figures} == CHARTS
        for figure in figures:
            assert figure["points"] > 0 and figure["canvas"], figure
        assert page.evaluate("window.fgDashboard.errors") == []

        screenshot = (
            DOCS_SCREENSHOT
            if os.environ.get("FG_UPDATE_SCREENSHOT") == "1"
            else tmp_path / "dashboard.png"
        )
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(screenshot), full_page=True)
        assert screenshot.stat().st_size > 50_000

        # The chain: same-page links land on an element, others answer 200.
        hrefs = page.eval_on_selector_all("#chain a", "els => els.map(e => e.getAttribute('href'))")
        run = f"#retrain-{seeded.retrain_run_id}"
        kinds = page.eval_on_selector_all(f"{run} .link .k", "els => els.map(e => e.textContent)")
        assert kinds[:5] == ["drift report", "MLflow run", "version", "gate", "deployment"]
        assert f"/v1/admin/dashboard/reports/{seeded.reports[-1]}.html" in hrefs
        assert f"#version-{seeded.promoted}" in hrefs
        assert any(h.startswith("#deployment-") for h in hrefs)
        for href in set(hrefs):
            if href.startswith("#"):
                assert page.query_selector(href) is not None, href
            else:
                response = context.request.get(base_url + href)  # with the session cookie
                assert response.status == 200, href
                assert response.headers["content-type"].startswith("text/html")
        page.click(f"{run} a[href='#version-{seeded.promoted}']")
        assert page.evaluate("location.hash") == f"#version-{seeded.promoted}"

        glance = page.inner_text("#glance")
        assert f"v{seeded.rolled_back_to}" in glance
        assert page.inner_text("#moves").count("rollback") >= 1

        assert log.console_errors == []
        assert log.foreign(base_url) == []
        assert any("/v1/admin/dashboard/" in url for url in log.requests)
    finally:
        context.close()


def test_phone_width_reads_without_sideways_scrolling(
    seeded: Seeded, chromium: Any, tmp_path: Path
) -> None:
    base_url = seeded.api.url
    context = chromium.new_context(
        viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True
    )
    page = context.new_page()
    log = PageLog(page)
    try:
        _sign_in(page, base_url)
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"the page is {overflow}px wider than the phone"
        for figure in _figures(page):
            assert figure["points"] > 0 and figure["canvas"], figure
            assert figure["width"] <= 390, figure
        page.screenshot(path=str(tmp_path / "dashboard-phone.png"), full_page=True)
        assert log.console_errors == []
        assert log.foreign(base_url) == []
    finally:
        context.close()


def test_an_empty_instance_explains_every_empty_chart(bare: LiveApi, chromium: Any) -> None:
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    log = PageLog(page)
    try:
        _sign_in(page, bare.url)
        figures = _figures(page)
        assert {f["id"] for f in figures} == CHARTS
        for figure in figures:
            if figure["points"] == 0:
                # No blank box: a sentence saying what will appear, and when.
                assert not figure["canvas"] and figure["empty"] and len(figure["empty"]) > 40
        assert "No retraining run yet" in page.inner_text("#chain")
        assert log.console_errors == []
        assert log.foreign(bare.url) == []
    finally:
        context.close()


@pytest.mark.parametrize("path", ["/dashboard", "/dashboard/login"])
def test_pages_load_nothing_from_elsewhere(bare: LiveApi, chromium: Any, path: str) -> None:
    context = chromium.new_context()
    page = context.new_page()
    log = PageLog(page)
    try:
        page.goto(bare.url + path)
        page.wait_for_load_state("networkidle")
        assert log.foreign(bare.url) == []
        assert log.console_errors == []
    finally:
        context.close()
