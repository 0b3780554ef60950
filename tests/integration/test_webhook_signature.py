"""EspoCRM's webhook signatures, computed here independently from the rules in docs/external-apis.md (PHP's
`base64_encode($webhookId . ':' . hash_hmac('sha256', $body, $secretKey))` and the legacy raw-binary
variant), against the gateway's endpoint: accepted, tampered, wrong secret, missing, unsigned."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging

import pytest
from fastapi.testclient import TestClient

from tests.gateway_helpers import gateway_logs
from tests.integration.test_webhook_ingest import build_settings
from webhook_gateway import signature
from webhook_gateway.app import create_app

WEBHOOK_A, SECRET_A = "6650a1b2c3d4e5f60", "a3f0c1d2e3f4a5b6c7d8e9f0a1b2c3d4"
WEBHOOK_B, SECRET_B = "6650a1b2c3d4e5f61", "b9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4"
BODY = b'[{"id":"6650ffee00aa11bb2","name":"M\\u00fcller GmbH","emailAddress":"info@example.org"}]'


def php_signature(webhook_id: str, secret: str, body: bytes) -> str:
    hexmac = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return base64.b64encode(f"{webhook_id}:{hexmac}".encode()).decode()


def php_legacy_signature(webhook_id: str, secret: str, body: bytes) -> str:
    raw = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return base64.b64encode(webhook_id.encode() + b":" + raw).decode()


@pytest.fixture
def client(redis_url: str, hub: str) -> TestClient:
    settings = build_settings(redis_url, hub, secret=f"{WEBHOOK_A}={SECRET_A},{WEBHOOK_B}={SECRET_B}")
    with TestClient(create_app(settings)) as c:
        yield c


def post(client: TestClient, headers: dict[str, str], body: bytes = BODY, event: str = "update"):
    return client.post(
        f"/webhooks/vmh/beteiligte/{event}", content=body, headers={"Content-Type": "application/json", **headers}
    )


def test_current_and_legacy_headers_are_accepted_per_webhook_secret(client: TestClient) -> None:
    for headers in (
        {"Signature": php_signature(WEBHOOK_A, SECRET_A, BODY)},
        {"X-Signature": php_legacy_signature(WEBHOOK_A, SECRET_A, BODY)},
        {"Signature": php_signature(WEBHOOK_B, SECRET_B, BODY)},
        {"X-Signature": php_legacy_signature(WEBHOOK_B, SECRET_B, BODY)},
    ):
        r = post(client, headers)
        assert r.status_code == 200, r.text
        assert r.json()["accepted"] == 1


def test_both_headers_as_espocrm_sends_them(client: TestClient) -> None:
    r = post(
        client,
        {
            "Signature": php_signature(WEBHOOK_A, SECRET_A, BODY),
            "X-Signature": php_legacy_signature(WEBHOOK_A, SECRET_A, BODY),
        },
    )
    assert r.status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {"Signature": php_signature(WEBHOOK_A, SECRET_A, BODY.replace(b"GmbH", b"AG"))},  # tampered body
        {"X-Signature": php_legacy_signature(WEBHOOK_A, SECRET_A, BODY + b" ")},
        {"Signature": php_signature(WEBHOOK_A, "not-the-secret", BODY)},  # wrong secret
        {"Signature": php_signature(WEBHOOK_A, SECRET_B, BODY)},  # B's secret for A
        {"Signature": php_signature("unknownwebhook01", SECRET_A, BODY)},  # unknown webhook id
        {"Signature": "not base64 at all!"},
        {"Signature": base64.b64encode(b"no-colon-here").decode()},
        {},  # missing
    ],
    ids=[
        "tampered",
        "tampered-legacy",
        "wrong-secret",
        "other-webhooks-secret",
        "unknown-webhook",
        "garbage",
        "no-colon",
        "missing",
    ],
)
def test_bad_or_missing_signature_is_401(client: TestClient, headers: dict[str, str]) -> None:
    r = post(client, headers)
    assert r.status_code == 401, r.text
    assert "accepted" not in r.json()


def test_unsigned_is_refused_unless_allowed(redis_url: str, hub: str, caplog: pytest.LogCaptureFixture) -> None:
    with TestClient(create_app(build_settings(redis_url, hub, secret=SECRET_A))) as c:
        assert post(c, {}).status_code == 401
    with caplog.at_level(logging.WARNING, logger="webhook_gateway.webhooks"):
        app = create_app(build_settings(redis_url, hub, secret=SECRET_A, allow_unsigned=True))
    assert any("ALLOW_UNSIGNED" in rec.getMessage() for rec in caplog.records)
    with TestClient(app) as c:
        assert post(c, {}).status_code == 200
        # a signature that is present must still be right
        assert post(c, {"Signature": php_signature(WEBHOOK_A, "wrong", BODY)}).status_code == 401


def test_a_plain_secret_serves_every_webhook_id() -> None:
    secrets = [(None, SECRET_A)]
    for wid in (WEBHOOK_A, WEBHOOK_B, "anything"):
        assert signature.verify(BODY, {"signature": php_signature(wid, SECRET_A, BODY)}, secrets).ok
    v = signature.verify(BODY, {"x-signature": php_legacy_signature(WEBHOOK_B, SECRET_A, BODY)}, secrets)
    assert v.ok and v.webhook_id == WEBHOOK_B and v.header == "x-signature"


def test_no_configured_secret_refuses_everything() -> None:
    v = signature.verify(BODY, {"signature": php_signature(WEBHOOK_A, SECRET_A, BODY)}, [])
    assert not v.ok and "ESPOCRM_WEBHOOK_SECRET" in v.reason


def test_raw_mac_containing_a_colon_still_verifies() -> None:
    # the legacy header carries raw bytes; find a body whose MAC contains b":" (0x3a)
    bodies = (f'[{{"id":"x{i}"}}]'.encode() for i in range(10_000))
    body = next(b for b in bodies if b":" in hmac.new(SECRET_A.encode(), b, hashlib.sha256).digest())
    v = signature.verify(
        body, {"x-signature": php_legacy_signature(WEBHOOK_A, SECRET_A, body)}, [(WEBHOOK_A, SECRET_A)]
    )
    assert v.ok


def test_unknown_webhook_id_is_answered_like_a_wrong_signature_and_logged_apart(client: TestClient) -> None:
    with gateway_logs() as logs:
        unknown = post(client, {"Signature": php_signature("unknownwebhook01", SECRET_A, BODY)})
        wrong = post(client, {"Signature": php_signature(WEBHOOK_A, "not-the-secret", BODY)})
        forged = post(client, {"Signature": php_signature("evil\nINFO forged", SECRET_A, BODY)})
    assert unknown.status_code == wrong.status_code == forged.status_code == 401
    strip = ("request_id",)
    assert (
        {k: v for k, v in unknown.json().items() if k not in strip}
        == {k: v for k, v in wrong.json().items() if k not in strip}
        == {k: v for k, v in forged.json().items() if k not in strip}
    )
    lines = logs.lines()
    assert any("unknownwebhook01" in line and "no secret" in line for line in lines)
    assert any("does not match" in line for line in lines)
    assert not [line for line in lines if "\nINFO forged" in line]


def test_the_worked_example_in_the_interfaces_doc_verifies() -> None:
    """docs/interfaces.md, "Webhook signature": its values are what EspoCRM sends and what the gateway accepts."""
    import re
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "interfaces.md").read_text()
    section = doc[doc.index("## Webhook signature") : doc.index("## Gateway limits")]
    hexmac = re.search(r"HMAC-SHA256 \(hex\)\s+(\S+)", section)[1]  # type: ignore[index]
    new = re.search(r"\nSignature\s+(\S+)", section)[1]  # type: ignore[index]
    legacy = re.search(r"\nX-Signature\s+(\S+)", section)[1]  # type: ignore[index]
    body, secret, wid = b'[{"id":"64f0c1a2b3c4d5e6f"}]', "sandbox-webhook-secret", "6571e7a9c1d2e3f40"
    assert hexmac == hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    assert new == php_signature(wid, secret, body) and legacy == php_legacy_signature(wid, secret, body)
    for header, value in (("signature", new), ("x-signature", legacy)):
        assert signature.verify(body, {header: value}, [(wid, secret)]).ok
        assert not signature.verify(body + b" ", {header: value}, [(wid, secret)]).ok
