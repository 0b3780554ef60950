"""The gateway's OpenAPI document: every route, every answer it can give.

FastAPI documents the routes of its router; this adds what it cannot see: the webhook routes (plain
ASGI ahead of the router, webhook_gateway/ingest.py), the token schemes, and the refusals of the
edge (408, 431, and 503 past the connection cap; webhook_gateway/server.py) that any request can get.
Routes name their own refusals with `errors(...)`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, ConfigDict, Field

from webhook_gateway.ingest import EVENTS, MAX_ITEMS, PATH_PREFIX

ERROR_DESCRIPTIONS = {
    400: "Bad request: the body or path can never succeed (`error` says which: bad_path, bad_body, "
    "method_override, ...)",
    401: "No token (or, on webhooks, no valid signature)",
    403: "Token not accepted, read-only token for a write, path not on the allow-list, or write protection; "
    "on Google notifications: the channel token or resource id does not match",
    404: "Not found",
    405: "Method not allowed",
    408: "The request's head or body did not arrive in time (the connection is closed)",
    409: "Conflict",
    410: "Gone: the Google channel was stopped or has expired (Google stops sending on any 4xx)",
    413: "Body (or, on webhooks, number of items) over the route's limit; `limit` / `limit_items` say it",
    414: "Path or query string too long",
    422: "The request does not match this document (`detail` names where and why, never the input)",
    431: "Request head over 16 KiB or 100 header fields (the connection is closed)",
    502: "Upstream (Advoware, Airflow) unreachable or refused",
    503: "A store the route needs (Redis, hub, Airflow) is down, the gateway is at its connection cap, or (on "
    "/healthz/deep) a check failed; "
    "retry (Retry-After where given)",
    504: "Advoware did not answer in time",
}
EDGE_STATUSES = (408, 431, 503)  # any request can get these from the server layer


class ErrorBody(BaseModel):
    """Every refusal of the gateway; some add fields (`limit`, `limit_items`, `detail`)."""

    model_config = ConfigDict(extra="allow")

    error: str = Field(description="a stable code: missing_token, bad_signature, body_too_large, ...")
    message: str = Field(description="what happened, for people")
    status: int
    request_id: str | None = None


class Problem(BaseModel):
    loc: list[str]
    msg: str
    type: str


class ValidationErrorBody(ErrorBody):
    detail: list[Problem] = Field(default_factory=list)


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` entries for these refusals, in the gateway's error format."""
    return {
        status: {
            "model": ValidationErrorBody if status == 422 else ErrorBody,
            "description": ERROR_DESCRIPTIONS[status],
        }
        for status in statuses
    }


# -- the webhook routes (not in the router) -----------------------------------------------------------
class WebhookItem(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str = Field(
        description="EspoCRM record id, [A-Za-z0-9_-]{1,64}; an item without a valid id is "
        "dead-lettered and reported in `rejected`"
    )


class RejectedItem(BaseModel):
    index: int
    reason: str


class WebhookAccepted(BaseModel):
    accepted: int
    duplicates: int
    rejected: list[RejectedItem]


def _schema_ref(doc: dict[str, Any], model: type[BaseModel]) -> dict[str, str]:
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, sub in schema.pop("$defs", {}).items():
        schemas.setdefault(name, sub)
    schemas.setdefault(model.__name__, schema)
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _error_response(doc: dict[str, Any], status: int) -> dict[str, Any]:
    model = ValidationErrorBody if status == 422 else ErrorBody
    return {
        "description": ERROR_DESCRIPTIONS[status],
        "content": {"application/json": {"schema": _schema_ref(doc, model)}},
    }


def _webhook_paths(doc: dict[str, Any], max_items: int, max_body: int) -> dict[str, Any]:
    responses: dict[str, Any] = {
        "200": {
            "description": "Stored in the queue (`duplicates`: exact re-deliveries, still queued)",
            "content": {"application/json": {"schema": _schema_ref(doc, WebhookAccepted)}},
        },
        **{str(s): _error_response(doc, s) for s in (400, 401, 404, 405, 413, 503)},
    }
    responses["405"]["headers"] = {"Allow": {"schema": {"type": "string"}, "description": "POST"}}
    responses["503"]["headers"] = {"Retry-After": {"schema": {"type": "string"}}}
    operation = {
        "summary": "EspoCRM webhook (signed)",
        "description": (
            f"One EspoCRM delivery: a JSON array of at most {max_items} objects, each with an `id`, at most "
            f"{max_body} bytes, signed with `Signature` (EspoCRM >= 9) or `X-Signature` (legacy). Every valid id "
            "is queued durably before the 200. 401 for a missing or wrong signature (one answer for every "
            "cause), 413 over the size or item limit, 400 for a body that can never succeed, 503 when Redis "
            "could not store the ids (EspoCRM retries)."
        ),
        "operationId": "espocrm_webhook",
        "tags": ["webhooks"],
        "parameters": [
            {"name": "event", "in": "path", "required": True, "schema": {"type": "string", "enum": list(EVENTS)}},
            {
                "name": "Signature",
                "in": "header",
                "required": False,
                "schema": {"type": "string"},
                "description": "base64(<webhookId>:<hex HMAC-SHA256 of the body>)",
            },
            {
                "name": "X-Signature",
                "in": "header",
                "required": False,
                "schema": {"type": "string"},
                "description": "base64(<webhookId>:<raw HMAC-SHA256 of the body>)",
            },
        ],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"type": "array", "maxItems": max_items, "items": _schema_ref(doc, WebhookItem)}
                }
            },
        },
        "responses": responses,
        "security": [],
    }
    return {PATH_PREFIX + "{event}": {"post": operation}}


def _add_edge_responses(doc: dict[str, Any]) -> None:
    for path_item in doc["paths"].values():
        for operation in path_item.values():
            for status in EDGE_STATUSES:
                operation["responses"].setdefault(str(status), _error_response(doc, status))


def complete_document(app: FastAPI, *, max_body: int, max_items: int = MAX_ITEMS) -> Callable[[], dict[str, Any]]:
    """What replaces app.openapi: the complete document (built once, then cached like FastAPI's)."""

    def complete() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            doc["paths"].update(_webhook_paths(doc, max_items, max_body))
            doc.setdefault("components", {})["securitySchemes"] = {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "GATEWAY_API_TOKEN (read-write) or GATEWAY_READ_TOKEN (GET only)",
                },
                "apiToken": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "X-API-Token",
                    "description": "the same tokens in a header of their own",
                },
            }
            doc["security"] = [{"bearer": []}, {"apiToken": []}]
            for path in ("/healthz", "/metrics"):  # open to anyone
                for operation in doc["paths"][path].values():
                    operation["security"] = []
            _add_edge_responses(doc)
            app.openapi_schema = doc
        return app.openapi_schema

    return complete
