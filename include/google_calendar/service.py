"""Calendar API services per thread, and the session that runs every call of one quota user.

httplib2 is not thread-safe, so each thread builds its own service (from the bundled discovery
document: no network) and its own connection. The service is the same for every principal: each
request is sent through the principal's authorised http (per thread, sharing the thread's
connection), so a thread that works for 1,000 employees builds one service, not 1,000 (~6 ms of CPU
each). The API endpoint, batch URI and token URI come from settings, which is how the same code
reaches the sandbox. Every request of a session passes the shared rate limiter and the backoff
policy; retries are ours (execute(num_retries=0)) so each attempt is counted.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import google_auth_httplib2
import httplib2
from googleapiclient.discovery import build
from googleapiclient.http import BatchHttpRequest, HttpRequest

from include.google_calendar.credentials import ServiceAccount
from include.google_calendar.ratelimit import Backoff, Grant, RateLimiter
from include.settings import GoogleSettings

GOOGLE_BATCH_URI = "https://www.googleapis.com/batch/calendar/v3"
DEFAULT_TIMEOUT_S = 30.0

MakeRequest = Callable[[Any], HttpRequest]  # service -> request (the service is per thread)


def build_service(http: httplib2.Http, settings: GoogleSettings) -> Any:
    """The Calendar API's request builder; requests carry `http` until a session gives them its own."""
    options = {"api_endpoint": settings.api_endpoint} if settings.api_endpoint else None
    return build("calendar", "v3", http=http, client_options=options, static_discovery=True, cache_discovery=False)


class CachedService:
    """A service whose collections (`events()`, `calendars()`, ...) are built once: each such call
    on a discovery service builds a new resource object from the discovery document (ms of CPU)."""

    _COLLECTIONS = frozenset({"events", "calendars", "calendarList", "acl"})

    def __init__(self, service: Any) -> None:
        self._service = service
        self._collections: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._service, name)
        if name not in self._COLLECTIONS:
            return attr

        def collection() -> Any:
            found = self._collections.get(name)
            if found is None:
                found = self._collections[name] = attr()
            return found

        return collection


class ServiceFactory:
    """Per thread: one connection (httplib2.Http), one service, and an authorised http per principal
    on that connection."""

    def __init__(self, account: ServiceAccount, settings: GoogleSettings, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.account = account
        self.settings = settings
        self.timeout_s = timeout_s
        self._local = threading.local()

    def _connection(self) -> httplib2.Http:
        conn: httplib2.Http | None = getattr(self._local, "connection", None)
        if conn is None:
            conn = self._local.connection = httplib2.Http(timeout=self.timeout_s)
        return conn

    def service(self) -> Any:
        svc = getattr(self._local, "service", None)
        if svc is None:
            svc = self._local.service = CachedService(build_service(self._connection(), self.settings))
        return svc

    def http(self, subject: str | None) -> google_auth_httplib2.AuthorizedHttp:
        cache: dict[str | None, google_auth_httplib2.AuthorizedHttp] | None = getattr(self._local, "https", None)
        if cache is None:
            cache = self._local.https = {}
        http = cache.get(subject)
        if http is None:
            http = cache[subject] = google_auth_httplib2.AuthorizedHttp(
                self.account.credentials(subject), http=self._connection()
            )
        return http

    @property
    def batch_uri(self) -> str:
        # new_batch_http_request() ignores api_endpoint, so the batch URI is always explicit.
        return self.settings.batch_uri or GOOGLE_BATCH_URI


@dataclass(eq=False)
class CalendarSession:
    """All calls of one principal: the service account (shared mode) or one employee (delegated).

    `quota_user` is whose per-user quota the calls spend; the limiter key is derived from it.
    `sent` counts every request sent (batch parts one by one, retries included).
    """

    factory: ServiceFactory
    subject: str | None
    quota_user: str
    limiter: RateLimiter | None
    backoff: Backoff
    sent: int = field(default=0, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @property
    def service(self) -> Any:
        return self.factory.service()

    def request(self, make: MakeRequest) -> HttpRequest:
        """The request `make` builds, sent as this session's principal (also inside a batch)."""
        req = make(self.service)
        req.http = self.factory.http(self.subject)
        return req

    def acquire_up_to(self, n: int, minimum: int = 1) -> Grant:
        """Budget for up to n requests (at least `minimum`), waiting as long as needed."""
        if self.limiter is None:
            return Grant(self.quota_user, n)
        return self.limiter.acquire_up_to(self.quota_user, n, minimum)

    def settle(self, grant: Grant) -> None:
        with self._lock:
            self.sent += grant.n
        if self.limiter is not None:
            self.limiter.settle(grant)

    def execute(self, make: MakeRequest, operation: str) -> Any:
        """One API call with rate limiting and backoff; raises HttpError for final answers."""

        def call() -> Any:
            grant = self.acquire_up_to(1)
            try:
                return self.request(make).execute(num_retries=0)
            finally:
                self.settle(grant)

        return self.backoff.run(call, operation=operation, quota_user=self.quota_user)

    def execute_batch(
        self, makes: list[MakeRequest], *, grant: Grant | None = None, operation: str = "batch"
    ) -> list[tuple[Any, BaseException | None]]:
        """One multipart batch (<= 50 parts): the answer of each part in order, or its HttpError.

        Parts fail on their own; only a failure of the whole batch (transport, outer 5xx) is retried
        here, resending every part, which our idempotent writes allow. `grant` is budget the caller
        already took for the first attempt (exactly len(makes) requests).
        """
        if not makes:
            return []
        given = [grant]

        def call() -> list[tuple[Any, BaseException | None]]:
            taken = given[0] or self.acquire_up_to(len(makes), len(makes))
            given[0] = None
            results: list[tuple[Any, BaseException | None]] = [(None, None)] * len(makes)

            def cb(request_id: str, response: Any, exception: BaseException | None) -> None:
                results[int(request_id)] = (response, exception)

            try:
                batch = BatchHttpRequest(callback=cb, batch_uri=self.factory.batch_uri)
                for i, make in enumerate(makes):
                    batch.add(self.request(make), request_id=str(i))
                batch.execute(http=self.factory.http(self.subject))
            finally:
                self.settle(taken)
            return results

        return self.backoff.run(call, operation=operation, quota_user=self.quota_user)
