"""The gateway against its own /openapi.json: the document names every route and every answer, and a
property-based run (schemathesis, bounded examples, the read-write token) finds no answer outside it.

The gateway is served as in production (webhook_gateway/server.py's uvicorn config) in front of the
Advoware sandbox, the real Redis and hub, and a fake Airflow that accepts triggers.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from include.settings import AirflowApiSettings, EspoCrmSettings, GatewaySettings, Settings
from sandbox.runner import ServerThread, free_port
from tests.advoware_helpers import sandbox_settings as advoware_sandbox
from tests.integration.test_airflow_api import PASSWORD, USER, make_fake_airflow
from tests.integration.test_gateway_proxy import hub_settings
from webhook_gateway.app import create_app
from webhook_gateway.server import uvicorn_config

WRITE, READ = "contract-write-token", "contract-read-token"
UPSTREAM_DOWN = {502, 503, 504}  # documented: Advoware or Airflow unreachable, a store down, the cap
MAX_EXAMPLES = 30  # per operation: the whole run stays within a minute or two on the 2-core CI machine


def _settings(advoware_url: str, airflow_url: str, redis_url: str, hub: str) -> Settings:
    return Settings(
        _env_file=None,
        redis_url=redis_url,
        postgres=hub_settings(hub),
        advoware=advoware_sandbox(advoware_url),
        espocrm=EspoCrmSettings(_env_file=None, webhook_secret="contract-secret"),
        airflow_api=AirflowApiSettings(_env_file=None, url=airflow_url, username=USER, password=PASSWORD, timeout_s=5),
        gateway=GatewaySettings(_env_file=None, api_token=WRITE, read_token=READ),
    )


@pytest.fixture
def gateway_url(advoware_url: str, redis_url: str, hub: str) -> Iterator[str]:
    with ServerThread(make_fake_airflow(dags=("advoware_calendar_sync", "beteiligte_sync"))) as airflow:
        settings = _settings(advoware_url, airflow.url, redis_url, hub)
        config = uvicorn_config(create_app(settings), settings, host="127.0.0.1", port=free_port())
        server = ServerThread(None, config=config)
        with server:
            yield server.url


# -- the document itself ------------------------------------------------------------------------------
def test_the_document_names_every_route_and_its_answers(gateway_url: str) -> None:
    doc = httpx.get(f"{gateway_url}/openapi.json").json()
    paths = doc["paths"]
    operations = {(method.upper(), path) for path, item in paths.items() for method in item}
    assert {
        ("POST", "/webhooks/vmh/beteiligte/{event}"),
        ("GET", "/webhooks/dead-letters"),
        ("POST", "/webhooks/dead-letters/{dead_letter_id}/replay"),
        ("POST", "/advoware/calendar/sync"),
        ("GET", "/healthz"),
        ("GET", "/metrics"),
    } <= operations
    assert {
        ("GET", "/api/advoware/{path}"),
        ("POST", "/api/advoware/{path}"),
        ("PUT", "/api/advoware/{path}"),
        ("DELETE", "/api/advoware/{path}"),
    } <= operations

    def statuses(method: str, path: str) -> set[str]:
        return set(paths[path][method]["responses"])

    assert {"400", "401", "403", "413", "414", "502", "504", "default"} <= statuses("post", "/api/advoware/{path}")
    assert {"200", "202", "401", "403", "413", "422", "502", "503"} <= statuses("post", "/advoware/calendar/sync")
    assert {"401", "403", "404", "409", "422", "503"} <= statuses(
        "post", "/webhooks/dead-letters/{dead_letter_id}/replay"
    )
    assert {"200", "400", "401", "413", "503"} <= statuses("post", "/webhooks/vmh/beteiligte/{event}")
    # Google's notifications: every refusal that ends Google's retries is a 4xx, the hub or Redis away a 503
    assert {"200", "400", "403", "404", "410", "503"} <= statuses("post", "/webhooks/google/calendar")
    google_headers = {p["name"].lower() for p in paths["/webhooks/google/calendar"]["post"]["parameters"]}
    assert {
        "x-goog-channel-id",
        "x-goog-channel-token",
        "x-goog-resource-id",
        "x-goog-resource-state",
        "x-goog-message-number",
        "x-goog-channel-expiration",
    } <= google_headers
    for path, item in paths.items():  # the edge's refusals can reach any request
        for operation in item.values():
            assert {"408", "431", "503"} <= set(operation["responses"]), path
    assert set(paths["/metrics"]["get"]["responses"]["200"]["content"]) == {"text/plain"}
    assert {"bearer", "apiToken"} <= set(doc["components"]["securitySchemes"])


def test_every_refusal_has_the_one_error_shape(gateway_url: str) -> None:
    """The refusals a newcomer meets first (no signature, a wrong one, no token, an unknown path, a wrong
    method), each validated against the document's ErrorBody: error, message, status, request_id."""
    import jsonschema

    doc = httpx.get(f"{gateway_url}/openapi.json").json()
    schema = {**doc["components"]["schemas"]["ErrorBody"], "components": doc["components"]}
    assert set(schema["required"]) >= {"error", "message", "status"}
    hook = f"{gateway_url}/webhooks/vmh/beteiligte"
    answers = [
        httpx.post(f"{hook}/update", content=b'[{"id": "a1"}]'),  # unsigned
        httpx.post(f"{hook}/update", content=b'[{"id": "a1"}]', headers={"Signature": "bm9wZTpub3Bl"}),
        httpx.post(f"{hook}/rename", content=b"[]"),
        httpx.get(f"{hook}/update"),
        httpx.get(f"{gateway_url}/webhooks/dead-letters"),
        httpx.get(f"{gateway_url}/webhooks/dead-letters", headers={"Authorization": "Bearer wrong"}),
        httpx.get(f"{gateway_url}/no/such/route"),
        httpx.get(f"{gateway_url}/healthz/deep"),
    ]
    assert [a.status_code for a in answers] == [401, 401, 404, 405, 401, 403, 404, 401]
    for answer in answers:
        body = answer.json()
        jsonschema.validate(body, schema)
        assert body["status"] == answer.status_code and body["message"] and body["error"].isidentifier(), body
        assert body["request_id"] == answer.headers["x-request-id"]


# -- property-based: every answer the gateway gives matches the document ----------------------------------
@schemathesis.check
def no_server_error_but_upstream_down(ctx: Any, response: Any, case: Any) -> bool | None:
    """A 5xx only as the documented answer to an unreachable upstream or store (502, 503, 504)."""
    if response.status_code >= 500 and response.status_code not in UPSTREAM_DOWN:
        raise AssertionError(f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:300]}")
    return None


CHECKS = [
    no_server_error_but_upstream_down,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


# The document as the gateway builds it (pytest collects the operations before any server runs; the
# first test below checks that the served /openapi.json is this very document). schemathesis'
# from_fixture does not work with pytest 9 (it reads the removed Function._nodeid).
DOCUMENT = create_app(
    _settings(
        "http://127.0.0.1:9",
        "http://127.0.0.1:9",
        "redis://127.0.0.1:6379/0",
        "postgresql://postgres@127.0.0.1:5432/postgres",
    )
).openapi()
schema = schemathesis.openapi.from_dict(DOCUMENT)
# valid requests and invalid ones (wrong types, missing fields, out-of-range ids): both must get an
# answer the document names, never an undocumented 5xx
schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE])


def test_the_served_document_is_the_one_under_test(gateway_url: str) -> None:
    assert httpx.get(f"{gateway_url}/openapi.json").json() == DOCUMENT


@schema.parametrize()
@hypothesis_settings(
    max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
)
def test_every_answer_matches_the_document(case: Any, gateway_url: str) -> None:
    case.call_and_validate(base_url=gateway_url, headers={"Authorization": f"Bearer {WRITE}"}, checks=CHECKS)
