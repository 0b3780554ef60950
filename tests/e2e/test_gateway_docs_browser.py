"""The gateway's /docs in a real headless Chromium (Debian's, driven by Playwright), with every request
to another host refused: Swagger UI renders from the gateway's own assets and lists the routes."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from include.settings import Settings
from sandbox.runner import ServerThread
from webhook_gateway.app import create_app

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
OUTPUT = Path(__file__).resolve().parents[2] / "test-output" / "gateway-docs"
pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def gateway() -> Iterator[str]:
    with ServerThread(create_app(Settings(_env_file=None))) as server:
        yield server.url


def test_docs_render_offline_and_list_the_routes(gateway: str, tmp_path: Path) -> None:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} missing: apt-get install chromium (.ci/run installs it)")
    from playwright.sync_api import sync_playwright

    elsewhere: list[str] = []

    def only_the_gateway(route, request) -> None:  # type: ignore[no-untyped-def]
        if urlsplit(request.url).netloc == urlsplit(gateway).netloc:
            route.continue_()
        else:  # a CDN would be asked here: refused, and remembered
            elsewhere.append(request.url)
            route.abort()

    with sync_playwright() as pw, tempfile.TemporaryDirectory(dir=tmp_path) as profile:
        context = pw.chromium.launch_persistent_context(
            profile,
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 900},
        )
        try:
            page = context.new_page()
            page.route("**/*", only_the_gateway)
            page.goto(f"{gateway}/docs")
            page.wait_for_selector(".opblock-summary-path", timeout=60_000)  # Swagger UI drew the operations
            paths = set(page.locator(".opblock-summary-path").all_inner_texts())
            OUTPUT.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(OUTPUT / "docs.png"), full_page=True)
        finally:
            context.close()
    assert elsewhere == []
    normalized = {p.replace("\u200b", "") for p in paths}
    assert {
        "/webhooks/vmh/beteiligte/{event}",
        "/api/advoware/{path}",
        "/advoware/calendar/sync",
        "/webhooks/dead-letters",
        "/healthz",
        "/metrics",
    } <= normalized, normalized


def test_redoc_renders_offline_without_asking_any_other_host(gateway: str, tmp_path: Path) -> None:
    """ReDoc's bundle wants its logo from cdn.redoc.ly: the page must render without that request."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} missing: apt-get install chromium (.ci/run installs it)")
    from playwright.sync_api import sync_playwright

    elsewhere: list[str] = []

    def only_the_gateway(route, request) -> None:  # type: ignore[no-untyped-def]
        if urlsplit(request.url).netloc == urlsplit(gateway).netloc:
            route.continue_()
        else:
            elsewhere.append(request.url)
            route.abort()

    with sync_playwright() as pw, tempfile.TemporaryDirectory(dir=tmp_path) as profile:
        context = pw.chromium.launch_persistent_context(
            profile,
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 900},
        )
        try:
            page = context.new_page()
            page.route("**/*", only_the_gateway)
            page.goto(f"{gateway}/redoc")
            page.get_by_text("/advoware/calendar/sync").first.wait_for(timeout=60_000)  # ReDoc drew the operations
            page.wait_for_load_state("networkidle")
            broken = page.locator("img[alt='redocly logo']").count()
            OUTPUT.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(OUTPUT / "redoc.png"), full_page=False)
        finally:
            context.close()
    assert elsewhere == []
    assert broken == 0  # no broken image left in the menu
