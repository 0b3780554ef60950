"""Scoped bearer tokens: a read token (GET only) and a read-write token (GATEWAY_API_TOKEN)."""

from __future__ import annotations

import hmac
from typing import Literal

from fastapi import Depends, Request, status

from webhook_gateway.errors import refusal

Scope = Literal["read", "write"]


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip() or None
    return request.headers.get("x-api-token") or None


def token_scope(request: Request) -> Scope:
    """The scope the presented token grants; 401 without a token, 403 for an unknown one."""
    gw = request.app.state.settings.gateway
    token = _bearer(request)
    if token is None:
        raise refusal(
            status.HTTP_401_UNAUTHORIZED,
            "missing_token",
            "missing bearer token",
            headers={"WWW-Authenticate": "Bearer"},
        )
    write = gw.api_token.get_secret_value()
    read = gw.read_token.get_secret_value()
    # compare_digest on both, always, so timing does not tell which one nearly matched
    is_write = bool(write) and hmac.compare_digest(token.encode(), write.encode())
    is_read = bool(read) and hmac.compare_digest(token.encode(), read.encode())
    if is_write:
        request.state.token_scope = "write"
        return "write"
    if is_read:
        request.state.token_scope = "read"
        return "read"
    raise refusal(status.HTTP_403_FORBIDDEN, "token_not_accepted", "token not accepted")


def require_write(scope: Scope = Depends(token_scope)) -> Scope:
    if scope != "write":
        raise refusal(
            status.HTTP_403_FORBIDDEN, "read_only_token", "this token is read-only; a write needs the read-write token"
        )
    return scope
