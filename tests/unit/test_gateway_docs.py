"""The gateway's API pages work without the internet: /docs and /redoc load their scripts and styles
from the gateway itself (the pinned package fastapi-offline), never from a CDN."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from include.settings import Settings
from webhook_gateway.app import create_app


def _client(root_path: str = "") -> TestClient:
    return TestClient(create_app(Settings(_env_file=None)), root_path=root_path)


def test_the_docs_pages_load_every_asset_from_the_gateway() -> None:
    with _client() as client:
        for page in ("/docs", "/redoc"):
            r = client.get(page)
            assert r.status_code == 200 and "text/html" in r.headers["content-type"]
            urls = re.findall(r'(?:src|href)="([^"]+)"', r.text)
            assert urls and not [u for u in urls if "://" in u], urls  # nothing from another host
            for url in urls:
                asset = client.get(url)
                assert asset.status_code == 200 and len(asset.content) > 1000, url
        assert "/openapi.json" in client.get("/docs").text


def test_behind_a_proxy_the_assets_keep_the_root_path() -> None:
    with _client("/gateway") as client:
        text = client.get("/docs").text
        assert '"/gateway/docs-assets/swagger-ui-bundle.js"' in text and "'/gateway/openapi.json'" in text
