"""One Advoware token shared by every process through Redis.

- Each process keeps a local copy until it is due for renewal, so a hot path costs no Redis call.
- A cold or due cache is refilled under a Redis lock: of many concurrent callers in any number of
  processes exactly one asks the security gateway; the others wait and read its result.
- A 401 from the API invalidates exactly the token that failed (compare-and-delete), so a burst of
  401s causes one renewal, not one per caller.
- Without Redis (None, or Redis down) it degrades to a per-process cache with a thread lock.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis

from include.advoware.errors import AdvowareUnavailable

log = logging.getLogger(__name__)

# Delete the cached token only if it is still the one that failed.
_COMPARE_AND_DELETE = """
local raw = redis.call('GET', KEYS[1])
if raw and cjson.decode(raw)['token'] == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass(frozen=True)
class Token:
    value: str
    expires_at: float  # epoch seconds
    renew_at: float  # epoch seconds: after this a caller fetches a new one

    @classmethod
    def issued(cls, value: str, lifetime_s: float, renew_before_s: float, now: float | None = None) -> Token:
        now = time.time() if now is None else now
        lifetime_s = max(lifetime_s, 0.0)
        # renew shortly before expiry: `renew_before_s`, but never more than a fifth of a short lifetime
        margin = min(renew_before_s, lifetime_s * 0.2)
        return cls(value, now + lifetime_s, now + lifetime_s - margin)

    def fresh(self, now: float | None = None) -> bool:
        return (time.time() if now is None else now) < self.renew_at

    def dumps(self) -> str:
        return json.dumps({"token": self.value, "expires_at": self.expires_at, "renew_at": self.renew_at})

    @classmethod
    def loads(cls, raw: bytes | str) -> Token:
        d = json.loads(raw)
        return cls(d["token"], float(d["expires_at"]), float(d["renew_at"]))


def cache_key(token_url: str, kanzlei: str, database: str, user: str, app_id: str) -> str:
    """Redis key of one identity's token; hashed so the key names no firm or user."""
    ident = "|".join((token_url.rstrip("/"), kanzlei, database, user, app_id))
    return "advoware:token:" + hashlib.sha256(ident.encode()).hexdigest()[:24]


class TokenCache:
    def __init__(
        self,
        fetch: Callable[[], Token],
        *,
        redis_client: redis.Redis | None,
        key: str,
        lock_timeout_s: float = 30.0,
    ) -> None:
        self._fetch = fetch
        self._redis = redis_client
        self.key = key
        self.lock_key = key + ":lock"
        self._lock_timeout_s = lock_timeout_s
        self._local: Token | None = None
        self._thread_lock = threading.Lock()
        self._cad = redis_client.register_script(_COMPARE_AND_DELETE) if redis_client is not None else None
        self._redis_warned = False

    def peek(self) -> str | None:
        """The process-local token if it is fresh; no I/O (the async hot path uses this)."""
        tok = self._local
        return tok.value if tok is not None and tok.fresh() else None

    def get(self) -> str:
        tok = self._local
        if tok is not None and tok.fresh():
            return tok.value
        with self._thread_lock:  # threads of one process queue here, then share the result
            tok = self._local
            if tok is not None and tok.fresh():
                return tok.value
            tok = self._load_shared()
            self._local = tok
            return tok.value

    def invalidate(self, failed: str) -> None:
        """Forget `failed` (answered 401) locally and in Redis, unless someone already replaced it."""
        with self._thread_lock:
            if self._local is not None and self._local.value == failed:
                self._local = None
        if self._cad is not None:
            try:
                self._cad(keys=[self.key], args=[failed])
            except redis.RedisError as exc:
                self._warn_redis(exc)

    # -- internals ---------------------------------------------------------------------------
    def _load_shared(self) -> Token:
        if self._redis is None:
            return self._fetch()
        try:
            tok = self._read()
            if tok is not None and tok.fresh():
                return tok
            lock = self._redis.lock(
                self.lock_key, timeout=self._lock_timeout_s, blocking_timeout=self._lock_timeout_s, sleep=0.02
            )
            if not lock.acquire():
                raise AdvowareUnavailable(
                    "Advoware token: gave up waiting for the token lock held by another process",
                    endpoint="Token",
                )
            try:
                tok = self._read()  # someone else may have renewed while we waited
                if tok is not None and tok.fresh():
                    return tok
                tok = self._fetch()
                ttl_ms = int((tok.expires_at - time.time()) * 1000)
                if ttl_ms > 0:
                    self._redis.set(self.key, tok.dumps(), px=ttl_ms)
                log.info(
                    "advoware token renewed key=%s lifetime=%.0fs",
                    self.key[-8:],
                    tok.expires_at - time.time(),
                )
                return tok
            finally:
                try:
                    lock.release()
                except redis.exceptions.LockError:  # expired while fetching: harmless, the token is stored
                    pass
        except redis.RedisError as exc:
            self._warn_redis(exc)
            return self._fetch()

    def _read(self) -> Token | None:
        assert self._redis is not None
        raw = self._redis.get(self.key)
        return Token.loads(raw) if raw else None

    def _warn_redis(self, exc: Exception) -> None:
        if not self._redis_warned:
            log.warning("advoware token cache: Redis unavailable (%s); using a per-process token", type(exc).__name__)
            self._redis_warned = True
