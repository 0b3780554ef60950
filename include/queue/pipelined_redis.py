"""One pipelined Redis connection for the gateway's hot path (the webhook enqueue).

Why not redis-py's asyncio client here: per command it takes a pooled connection, wraps the call in
its retry helper and a timeout, and awaits the reply before the connection is free again; measured at
a quarter of the gateway's CPU per webhook (py-spy). This writes every command at once on one connection
and matches the replies to the callers in order (Redis answers in order), which also lets Redis fsync
many concurrent enqueues in one go. Packing and parsing are hiredis (Redis' own C protocol library);
the URL is parsed by redis-py, and the errors are redis-py's, so callers handle one family.

Failure rules: a lost connection fails every command in flight with `redis.ConnectionError` (the
gateway answers 503, EspoCRM delivers again); a reply that does not come within `reply_timeout_s`
drops the connection the same way (after that the order of replies could no longer be trusted).
The next command connects again.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import ssl
import time
from typing import Any, cast

import hiredis
import redis
from redis.connection import SSLConnection, UnixDomainSocketConnection, parse_url


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.reader = hiredis.Reader(replyError=redis.ResponseError, protocolError=redis.InvalidResponse)
        self.waiting: collections.deque[tuple[asyncio.Future[Any], float]] = collections.deque()
        self.transport: asyncio.Transport | None = None
        self.lost: BaseException | None = None
        self.loop = asyncio.get_running_loop()
        self._outgoing: list[bytes] = []  # commands held back while a batch is in flight
        self._in_flight = 0  # commands written and not yet answered
        self._flush_scheduled = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # create_connection() over TCP always hands a stream transport
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        waiting = self.waiting
        while True:
            try:
                reply = self.reader.gets()
            except redis.InvalidResponse as exc:  # garbage on the wire: nothing after it can be matched
                self.fail(exc)
                return
            if reply is False:
                return
            if not waiting:  # a reply nobody asked for: the stream is out of step
                self.fail(redis.InvalidResponse("unexpected reply from Redis"))
                return
            future, _ = waiting.popleft()
            self._in_flight -= 1
            if not future.done():  # a caller that gave up (cancelled) still consumed its reply
                future.set_result(reply)  # replies that are errors are handed over as values
            if self._in_flight == 0 and self._outgoing:  # the batch is answered: send the next one
                self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(redis.ConnectionError(f"connection to Redis lost: {exc or 'closed by server'}"))

    def fail(self, exc: BaseException) -> None:
        if self.lost is None:
            self.lost = exc
        while self.waiting:
            future, _ = self.waiting.popleft()
            if not future.done():  # an instance each: a raised exception carries its own traceback
                future.set_exception(type(exc)(*exc.args))
        if self.transport is not None:
            self.transport.abort()

    def send(self, packed: bytes) -> asyncio.Future[Any]:
        future = self.loop.create_future()
        self.waiting.append((future, time.monotonic()))
        self._outgoing.append(packed)
        if self._in_flight == 0 and not self._flush_scheduled:
            self._flush_scheduled = True  # the rest of this loop iteration joins the batch
            self.loop.call_soon(self._flush)
        return future

    def _flush(self) -> None:
        """Write the held-back commands in one go. At most one batch is in flight: while Redis works on
        one (with appendfsync always: writes it and fsyncs), the next one gathers, so one fsync serves
        many webhooks (group commit) and the wait adds at most one round trip."""
        self._flush_scheduled = False
        if not self._outgoing or self._in_flight or self.lost is not None or self.transport is None:
            return
        outgoing, self._outgoing = self._outgoing, []
        self._in_flight = len(outgoing)
        self.transport.write(b"".join(outgoing))


class PipelinedRedis:
    """`await execute(*args)`: one command on the shared connection; `evalsha()` runs a Lua script."""

    def __init__(self, url: str, *, connect_timeout_s: float = 1.0, reply_timeout_s: float = 3.0) -> None:
        self._options = parse_url(url)
        self.connect_timeout_s = connect_timeout_s
        self.reply_timeout_s = reply_timeout_s
        self._protocol: _Protocol | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connecting: asyncio.Lock | None = None
        self._watchdog: asyncio.TimerHandle | None = None

    # -- connection -------------------------------------------------------------------------------
    async def _connection(self) -> _Protocol:
        """(Re)connect: the slow path behind `_ready`; concurrent callers wait for one connection."""
        loop = asyncio.get_running_loop()
        # a new event loop (tests): nothing of the old one can be used (the lock is set with the loop)
        if self._loop is not loop or self._connecting is None:
            self._drop()
            self._loop, self._connecting = loop, asyncio.Lock()
        async with self._connecting:
            if self._protocol is None or self._protocol.lost is not None:
                self._protocol = await self._connect(loop)
                self._arm_watchdog()
            return self._protocol

    async def _connect(self, loop: asyncio.AbstractEventLoop) -> _Protocol:
        o = self._options
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                if o.get("connection_class") is UnixDomainSocketConnection:
                    _, protocol = await loop.create_unix_connection(_Protocol, o["path"])
                else:
                    tls = _tls_context(o) if o.get("connection_class") is SSLConnection else None
                    _, protocol = await loop.create_connection(
                        _Protocol, o.get("host", "localhost"), o.get("port", 6379), ssl=tls
                    )
                setup: list[tuple[Any, ...]] = []
                if o.get("password"):
                    setup.append(
                        ("AUTH", o["username"], o["password"]) if o.get("username") else ("AUTH", o["password"])
                    )
                if o.get("db"):
                    setup.append(("SELECT", o["db"]))
                for command in setup:
                    reply = await protocol.send(hiredis.pack_command(command))
                    if isinstance(reply, redis.ResponseError):
                        protocol.fail(reply)
                        raise redis.AuthenticationError(f"{command[0]} refused: {reply}")
        except TimeoutError:
            raise redis.TimeoutError(f"no connection to Redis within {self.connect_timeout_s}s") from None
        except OSError as exc:
            raise redis.ConnectionError(f"cannot connect to Redis: {exc}") from None
        return protocol

    def _arm_watchdog(self) -> None:
        if self._watchdog is None and self._loop is not None:
            self._watchdog = self._loop.call_later(min(0.5, self.reply_timeout_s / 2), self._check_overdue)

    def _check_overdue(self) -> None:
        """One timer for all commands (a timeout per command costs a task each): the oldest command in
        flight waited too long → the connection is dropped and everything in flight fails."""
        self._watchdog = None
        protocol = self._protocol
        if protocol is None or protocol.lost is not None:
            return
        if protocol.waiting and time.monotonic() - protocol.waiting[0][1] > self.reply_timeout_s:
            protocol.fail(redis.TimeoutError(f"Redis did not answer within {self.reply_timeout_s}s"))
            return
        self._arm_watchdog()

    def _drop(self) -> None:
        watchdog, protocol = self._watchdog, self._protocol
        self._watchdog = self._protocol = None
        if self._loop is None or self._loop.is_closed():  # its transport went with its loop
            return
        if watchdog is not None:
            watchdog.cancel()
        if protocol is not None:
            protocol.fail(redis.ConnectionError("connection closed"))

    # -- commands ---------------------------------------------------------------------------------
    def _ready(self) -> _Protocol | None:
        """The open connection of the running loop, without a coroutine (the common case)."""
        protocol = self._protocol
        if protocol is not None and protocol.lost is None and protocol.loop is asyncio.get_running_loop():
            return protocol
        return None

    async def execute(self, *args: Any) -> Any:
        protocol = self._ready() or await self._connection()
        reply = await protocol.send(hiredis.pack_command(args))
        if isinstance(reply, redis.ResponseError):
            raise reply
        return reply

    async def evalsha(self, script: Script, keys: list[str], args: list[Any]) -> Any:
        """EVALSHA, and EVAL once when the server does not know the script (restarted, flushed)."""
        protocol = self._ready() or await self._connection()
        reply = await protocol.send(hiredis.pack_command(("EVALSHA", script.sha, len(keys), *keys, *args)))
        if isinstance(reply, redis.ResponseError):
            if not str(reply).startswith("NOSCRIPT"):
                raise reply
            return await self.execute("EVAL", script.source, len(keys), *keys, *args)
        return reply

    async def close(self) -> None:
        self._drop()


def _tls_context(options: dict[str, Any]) -> ssl.SSLContext:
    """rediss:// as redis-py reads it: `ssl_ca_certs` (a CA file) and `ssl_cert_reqs=none` from the URL."""
    context = ssl.create_default_context(cafile=options.get("ssl_ca_certs"))
    if str(options.get("ssl_cert_reqs", "required")).lower() in ("none", str(int(ssl.CERT_NONE))):
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class Script:
    """A Lua script and its SHA1 (what EVALSHA names it by)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()
