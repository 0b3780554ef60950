"""Advoware client settings that reach the Advoware sandbox (shared by client and proxy tests)."""

from __future__ import annotations

from typing import Any

from include.settings import AdvowareSettings
from sandbox import advoware as sbx


def sandbox_settings(url: str, **kw: Any) -> AdvowareSettings:
    values: dict[str, Any] = dict(
        base_url=url,
        auth_url="",
        configurator_url="",
        username=sbx.USERNAME,
        password=sbx.PASSWORD,
        app_id=sbx.APP_ID,
        api_key=sbx.API_KEY,
        kanzlei=sbx.KANZLEI,
        database=sbx.DATABASE,
        write_protection=False,
        timeout_s=5.0,
        max_retries=3,
    )
    values.update(kw)
    return AdvowareSettings(**values)
