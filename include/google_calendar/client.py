"""Entry point: `GoogleCalendarClient` turns settings (or an Airflow connection) into sessions.

Shared mode (GOOGLE_DELEGATION=false): every call runs as the service account, one quota user.
Delegated mode: every employee's calls run as that employee (domain-wide delegation), each its
own quota user. Callers ask `session_for(email)` and never care which mode is on.
"""

from __future__ import annotations

from include.google_calendar.credentials import ServiceAccount
from include.google_calendar.ratelimit import Backoff, RateLimiter
from include.google_calendar.service import DEFAULT_TIMEOUT_S, CalendarSession, ServiceFactory
from include.settings import GoogleSettings, get_settings


class GoogleCalendarClient:
    def __init__(
        self,
        settings: GoogleSettings,
        account: ServiceAccount,
        *,
        limiter: RateLimiter | None,
        backoff: Backoff | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self.settings = settings
        self.account = account
        self.limiter = limiter
        self.backoff = backoff or Backoff(max_retries=settings.max_retries)
        self.factory = ServiceFactory(account, settings, timeout_s)
        self._sessions: dict[str | None, CalendarSession] = {}

    @classmethod
    def from_settings(
        cls,
        settings: GoogleSettings | None = None,
        *,
        redis_url: str | None = None,
        account: ServiceAccount | None = None,
        backoff: Backoff | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> GoogleCalendarClient:
        """Key file from GOOGLE_CALENDAR_SERVICE_ACCOUNT_PATH (unless `account` is given); the
        limiter in Redis at REDIS_URL with GOOGLE_REQUESTS_PER_WINDOW per quota user and
        GOOGLE_PROJECT_REQUESTS_PER_WINDOW for the whole project, per GOOGLE_WINDOW_S."""
        settings = settings or get_settings().google
        account = account or ServiceAccount.from_settings(settings)
        limiter = RateLimiter.from_url(
            redis_url or get_settings().redis_url,
            limit=settings.requests_per_window,
            window_s=settings.window_s,
            project_limit=settings.project_requests_per_window,
        )
        return cls(settings, account, limiter=limiter, backoff=backoff, timeout_s=timeout_s)

    @property
    def delegated(self) -> bool:
        return self.settings.delegation

    @property
    def mode(self) -> str:
        return "delegated" if self.delegated else "shared"

    def session_for(self, email: str | None) -> CalendarSession:
        """The session that acts for an employee: as the employee when delegated, else as the SA."""
        subject = email if (self.delegated and email) else None
        session = self._sessions.get(subject)
        if session is None:
            quota_user = subject or self.account.email
            session = CalendarSession(self.factory, subject, quota_user, self.limiter, self.backoff)
            self._sessions.setdefault(subject, session)
            session = self._sessions[subject]
        return session

    @property
    def retries(self) -> int:
        return self.backoff.retries
