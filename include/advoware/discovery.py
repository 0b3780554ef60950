"""Where the API and the security gateway live: configured, or asked from the vendor's configurator.

`GET <configurator>/AdvonetConfigurator/api/Url?Kanzlei=<firm>` answers
`{"connectorUrl", "relayUrl", "securityGateway"}`; the API base is `connectorUrl` if set, else `relayUrl`.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from include.advoware.errors import AdvowareError, AdvowareUnavailable
from include.settings import AdvowareSettings

CONFIGURATOR_PATH = "/AdvonetConfigurator/api/Url"


@dataclass(frozen=True)
class Endpoints:
    api_base: str  # without trailing slash; the API lives under <api_base>/api/v1/advonet/
    token_base: str  # the security gateway; the token is POSTed to <token_base>/api/v1/Token


def configurator_url(configured: str) -> str:
    """Accept either the configurator's host or its full `.../api/Url` address."""
    url = configured.rstrip("/")
    return url if url.lower().endswith("/api/url") else url + CONFIGURATOR_PATH


def discover(s: AdvowareSettings, http: httpx.Client | None = None) -> Endpoints:
    """Endpoints from settings, asking the configurator only when ADVOWARE_CONFIGURATOR_URL is set."""
    if not s.configurator_url:
        return Endpoints(s.base_url.rstrip("/"), s.token_url_base)
    url = configurator_url(s.configurator_url)
    own = http is None
    http = http or httpx.Client(timeout=min(s.timeout_s, 15.0))
    try:
        resp = http.get(url, params={"Kanzlei": s.kanzlei})
    except httpx.HTTPError as exc:
        raise AdvowareUnavailable(
            f"Advoware discovery GET {CONFIGURATOR_PATH} failed: {type(exc).__name__}",
            method="GET",
            endpoint=CONFIGURATOR_PATH,
        ) from None
    finally:
        if own:
            http.close()
    if resp.status_code != 200:
        raise AdvowareUnavailable(
            f"Advoware discovery GET {CONFIGURATOR_PATH} answered {resp.status_code}",
            method="GET",
            endpoint=CONFIGURATOR_PATH,
            status=resp.status_code,
        )
    data = resp.json()
    api = (data.get("connectorUrl") or data.get("relayUrl") or "").rstrip("/")
    if not api:
        raise AdvowareError(
            "Advoware discovery answered neither connectorUrl nor relayUrl",
            method="GET",
            endpoint=CONFIGURATOR_PATH,
            status=200,
        )
    # an explicitly configured security gateway wins over the discovered one
    token = (s.auth_url or data.get("securityGateway") or api).rstrip("/")
    return Endpoints(api, token)
