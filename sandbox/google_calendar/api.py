"""Routing and the per-request pipeline shared by direct calls and batch parts.

Pipeline of one API request: route -> authenticate (401) -> SandboxControl.enter (stats, latency,
injected faults) -> quota of the principal (403/429 rateLimitExceeded) -> scope check -> handler.
A batch part goes through exactly the same pipeline as a direct call.
"""

from __future__ import annotations

import copy
import json
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from sandbox.common import SandboxControl

from . import guests, sharing
from .auth import Principal, TokenAuthority
from .errors import GoogleError, bad_param, from_fault, not_found
from .push import PushHub
from .quota import SlidingWindowQuota
from .store import CalendarStore

REPEATABLE = frozenset({"privateExtendedProperty", "sharedExtendedProperty", "eventTypes"})
SEND_UPDATES = ("all", "externalOnly", "none")
JSON_HEADERS = {"Content-Type": "application/json; charset=UTF-8"}

# (method, path pattern, endpoint name, is a write); "*" is one path segment.
ROUTES: tuple[tuple[str, tuple[str, ...], str, bool], ...] = (
    ("POST", ("calendars",), "calendars.insert", True),
    ("GET", ("calendars", "*"), "calendars.get", False),
    ("DELETE", ("calendars", "*"), "calendars.delete", True),
    ("GET", ("users", "me", "calendarList"), "calendarList.list", False),
    ("POST", ("users", "me", "calendarList"), "calendarList.insert", True),
    ("GET", ("users", "me", "calendarList", "*"), "calendarList.get", False),
    ("DELETE", ("users", "me", "calendarList", "*"), "calendarList.delete", True),
    ("POST", ("calendars", "*", "acl"), "acl.insert", True),
    ("GET", ("calendars", "*", "acl"), "acl.list", False),
    ("GET", ("calendars", "*", "acl", "*"), "acl.get", False),
    ("PATCH", ("calendars", "*", "acl", "*"), "acl.patch", True),
    ("DELETE", ("calendars", "*", "acl", "*"), "acl.delete", True),
    ("GET", ("calendars", "*", "events"), "events.list", False),
    ("POST", ("calendars", "*", "events"), "events.insert", True),
    ("GET", ("calendars", "*", "events", "*"), "events.get", False),
    ("GET", ("calendars", "*", "events", "*", "instances"), "events.instances", False),
    ("PATCH", ("calendars", "*", "events", "*"), "events.patch", True),
    ("PUT", ("calendars", "*", "events", "*"), "events.update", True),
    ("DELETE", ("calendars", "*", "events", "*"), "events.delete", True),
    ("POST", ("calendars", "*", "events", "watch"), "events.watch", False),
    ("POST", ("channels", "stop"), "channels.stop", False),
)
EVENT_WRITES = frozenset({"events.insert", "events.patch", "events.update", "events.delete"})


@dataclass
class ApiRequest:
    method: str
    path: str  # below /calendar/v3/, still percent-encoded
    query: str
    headers: dict[str, str]  # lower-case names
    body: bytes = b""


@dataclass
class ApiResponse:
    status: int
    body: dict[str, Any] | None
    headers: dict[str, str] = field(default_factory=dict)

    def encoded(self) -> bytes:
        return b"" if self.body is None else json.dumps(self.body, ensure_ascii=False).encode()

    @classmethod
    def error(cls, exc: GoogleError) -> ApiResponse:
        return cls(exc.code, exc.body(), {**JSON_HEADERS, **exc.headers})


@dataclass
class Config:
    quota_requests: int = 600
    quota_window_s: float = 60.0
    quota_status: int = 403
    project_quota_requests: int = 10000  # per quota_window_s, every principal together; 0 = none
    token_lifetime_s: int = 3600
    enforce_access: bool = True
    default_time_zone: str = "UTC"
    series_timing_model: str = "anchor"  # series.TIMING_MODELS
    # push notifications (push.py)
    push_max_ttl_s: float = 604800.0  # cap on a channel's lifetime (Google: about a week for events)
    push_delay_s: float = 0.0  # from a change to its message
    push_batch_s: float = 0.0  # changes of one channel within this window become one message
    push_loss: float = 0.0  # share of messages never sent
    push_duplicates: float = 0.0  # share of messages sent twice
    push_seed: int = 0  # of the Random that draws loss and duplicates
    push_retry_base_s: float = 1.0  # first backoff after a 5xx; doubles per attempt
    push_max_attempts: int = 5
    push_require_https: bool = False  # Google's rule; the demo's gateway speaks http

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def route(method: str, path: str) -> tuple[str, bool, list[str]] | None:
    segments = [urllib.parse.unquote(s) for s in path.strip("/").split("/")] if path.strip("/") else []
    for r_method, pattern, endpoint, write in ROUTES:
        if r_method != method or len(pattern) != len(segments):
            continue
        if all(p == "*" or p == s for p, s in zip(pattern, segments, strict=True)):
            return endpoint, write, [s for p, s in zip(pattern, segments, strict=True) if p == "*"]
    return None


def parse_params(query: str) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for name, value in urllib.parse.parse_qsl(query, keep_blank_values=True):
        if name in REPEATABLE:
            params.setdefault(name, []).append(value)
        else:
            params[name] = value
    return params


def _check_common_params(params: dict[str, Any]) -> None:
    value = params.get("sendUpdates")
    if value is not None and value not in SEND_UPDATES:
        raise bad_param(
            "sendUpdates",
            f"Invalid string value: '{value}'. Allowed values: [all, externalOnly, none]",
            "invalidParameter",
        )
    for name in ("sendNotifications", "supportsAttachments"):
        value = params.get(name)
        if value is not None and value.lower() not in ("true", "false"):
            raise bad_param(name, f"Invalid boolean value: '{value}'.", "invalidParameter")


class CalendarApi:
    def __init__(
        self,
        store: CalendarStore,
        control: SandboxControl,
        tokens: TokenAuthority,
        quota: SlidingWindowQuota,
        config: Config,
    ) -> None:
        self.store = store
        self.control = control
        self.tokens = tokens
        self.quota = quota
        self.config = config
        self.mails = guests.MailLog()  # what Google would have mailed (guests.py)
        self.push = PushHub(config)  # watch channels and their deliveries (push.py)

    def _count_write(self, endpoint: str, principal: str) -> None:
        # SandboxControl counted the request already; a write counts only once it happened.
        self.control.count_write(endpoint, principal)

    def quota_error(self) -> GoogleError:
        status = self.config.quota_status
        return GoogleError(status, "rateLimitExceeded", "Rate Limit Exceeded", domain="usageLimits")

    async def handle(self, req: ApiRequest) -> ApiResponse:
        method = req.headers.get("x-http-method-override", req.method).upper()
        matched = route(method, req.path)
        if matched is None:
            return ApiResponse.error(not_found())
        endpoint, write, args = matched
        try:
            principal = self.tokens.authenticate(req.headers.get("authorization"))
        except GoogleError as exc:
            self.control.count(endpoint, write=False, principal=None)
            return ApiResponse.error(exc)
        fault = await self.control.enter(endpoint, write=write, principal=principal.name, count_write=False)
        if fault is not None and fault.kind == "status":
            return ApiResponse.error(from_fault(fault.status, fault.reason, fault.retry_after))
        if not self.quota.admit(principal.name):
            return ApiResponse.error(self.quota_error())
        try:
            if write and principal.read_only:
                raise GoogleError(403, "insufficientPermissions")
            params = parse_params(req.query)
            _check_common_params(params)
            body: Any = None
            if method in ("POST", "PUT", "PATCH"):
                try:
                    body = json.loads(req.body) if req.body.strip() else {}
                except (ValueError, UnicodeDecodeError) as exc:
                    raise GoogleError(400, "parseError", "Parse Error") from exc
            status, result = self._guarded(endpoint, principal, args, params, body, req.headers)
            result = guests.visible(result, principal.name)
            if fault is not None and fault.kind == "empty_list" and endpoint == "events.list" and result:
                result = self._emptied(result)
        except GoogleError as exc:
            return ApiResponse.error(exc)
        if write:
            self._count_write(endpoint, principal.name)
        if endpoint in EVENT_WRITES:
            self._notify(principal.name, args[0])
        return ApiResponse(status, result, JSON_HEADERS if result is not None else {})

    def _notify(self, principal: str, calendar_id: str) -> None:
        """Queue the push messages of a change (push.py delivers them in the background)."""
        try:
            resolved = self.store.calendar(calendar_id, principal, "read").id
        except GoogleError:
            return
        self.push.changed(resolved)

    def _emptied(self, listing: dict[str, Any]) -> dict[str, Any]:
        """The 'side suddenly returns nothing' glitch: an empty, final page."""
        out = dict(listing, items=[])
        token = listing.get("nextSyncToken")
        out.pop("nextPageToken", None)
        if token is not None:
            out["nextSyncToken"] = token
        return out

    def _stored(self, principal: str, calendar_id: str, event_id: str) -> dict[str, Any] | None:
        """The event as stored now (None if the calendar or the event cannot be seen)."""
        try:
            ev = self.store.calendar(calendar_id, principal, "read").events.get(event_id)
        except GoogleError:
            return None
        return copy.deepcopy(ev.res) if ev is not None else None

    def _guarded(
        self,
        endpoint: str,
        principal: Principal,
        args: list[str],
        params: dict[str, Any],
        body: Any,
        headers: dict[str, str],
    ) -> tuple[int, dict[str, Any] | None]:
        """An event write as Google applies it (guests.py): what the request may not change kept,
        the read-only fields derived, and the mails Google would send counted."""
        if endpoint not in EVENT_WRITES:
            status, result = self._dispatch(endpoint, principal, args, params, body, headers)
            if endpoint in ("acl.insert", "acl.patch") and result is not None:
                guests.notify_acl(self.mails, params, result, principal=principal.name, calendar_id=args[0])
            return status, result
        who = principal.name
        before = self._stored(who, args[0], args[1]) if len(args) > 1 else None
        body = guests.restrict(endpoint, body, before, params, who)
        status, result = self._dispatch(endpoint, principal, args, params, body, headers)
        event_id = args[1] if len(args) > 1 else (result or {}).get("id")
        after = self._stored(who, args[0], event_id) if event_id else None
        if after is not None and event_id and endpoint != "events.delete":
            cal = self.store.calendar(args[0], who, "read")
            guests.derive(cal.events[event_id].res)
            result = self.store.render(cal.events[event_id], self.store._out_tz(cal, params))
            after = copy.deepcopy(cal.events[event_id].res)
        guests.notify(
            self.mails,
            endpoint,
            params,
            principal=who,
            calendar_id=args[0],
            event_id=event_id,
            before=before,
            after=after if endpoint != "events.delete" else None,
            is_google_user=lambda email: email in self.store.calendars,
        )
        return status, result

    def _dispatch(
        self,
        endpoint: str,
        principal: Principal,
        args: list[str],
        params: dict[str, Any],
        body: Any,
        headers: dict[str, str],
    ) -> tuple[int, dict[str, Any] | None]:
        store, who = self.store, principal.name
        if_match = headers.get("if-match")
        if endpoint in ("calendars.insert", "acl.insert") and not isinstance(body, dict):
            raise GoogleError(400, "parseError", "Parse Error")
        match endpoint:
            case "calendars.insert":
                return 200, store.insert_calendar(who, body)
            case "calendars.get":
                return 200, store.get_calendar(who, args[0])
            case "calendars.delete":
                store.delete_calendar(who, args[0])
                return 204, None
            case "calendarList.list":
                return 200, store.calendar_list(who, params)
            case "acl.insert":
                return 200, store.insert_acl(who, args[0], body)
            case "acl.list":
                return 200, store.list_acl(who, args[0])
            case "acl.get":
                return 200, sharing.get_acl(store, who, args[0], args[1])
            case "acl.patch":
                return 200, sharing.patch_acl(store, who, args[0], args[1], body)
            case "acl.delete":
                sharing.delete_acl(store, who, args[0], args[1])
                return 204, None
            case "calendarList.get":
                return 200, sharing.get_entry(store, who, args[0])
            case "calendarList.insert":
                return 200, sharing.insert_entry(store, who, body)
            case "calendarList.delete":
                sharing.delete_entry(store, who, args[0])
                return 204, None
            case "events.list":
                return 200, store.list_events(who, args[0], params)
            case "events.insert":
                return 200, store.insert_event(who, args[0], body)
            case "events.get":
                return 200, store.get_event(who, args[0], args[1], params)
            case "events.instances":
                return 200, store.list_instances(who, args[0], args[1], params)
            case "events.patch":
                return 200, store.patch_event(who, args[0], args[1], body, if_match)
            case "events.update":
                return 200, store.update_event(who, args[0], args[1], body, if_match)
            case "events.delete":
                store.delete_event(who, args[0], args[1], if_match)
                return 204, None
            case "events.watch":
                cal = store.calendar(args[0], who, "read")
                return 200, self.push.watch(who, cal.id, body)
            case "channels.stop":
                self.push.stop(body)
                return 204, None
        raise not_found()  # pragma: no cover - every routed endpoint is handled above
