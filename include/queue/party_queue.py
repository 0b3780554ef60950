"""The durable, coalescing work queue of EspoCRM party ids (webhook gateway → beteiligte_sync DAG).

Redis keys (prefix `vmh:webhook`, the seed's namespace):
  <p>:pending              ZSET  id → not-before time (unix s). Ready = score <= now. Also the name of
                                 the pub/sub channel every enqueue publishes on (wakes the DAG's trigger).
  <p>:claimed              ZSET  id → lease expiry (unix s). Disjoint from pending.
  <p>:item:<id>            HASH  gen (deliveries since queued), seen_create/seen_update/seen_delete/seen_replay (flags),
                                 last_kind, first_seen, last_seen, attempts, last_error,
                                 lease_expired, claim (token), claim_gen
  <p>:seen:<sha256>        STRING count of deliveries of exactly this (event, body); TTL seen_ttl_s
  <p>:stats                HASH  deliveries, duplicates, accepted, rejected, dead
  <p>:deadletters:outbox   LIST  JSON dead letters waiting to be written to the hub table dead_letters
  <p>:deadletters:lock     STRING short lock of the outbox drainer

Rules (each step is one Lua script, so it is atomic and, with appendfsync always, durable on return):
- enqueue marks every id pending again and bumps its `gen`; an id being worked on (claimed) is not
  put in pending, its bumped gen makes the ack send it round again. Repeated changes coalesce into one
  unit of work; the sync always fetches the current record, so order does not matter, and a delete is
  recorded (seen_delete) but never needed to find the record's absence.
- the body hash only counts exact re-deliveries (stats + answer); it never suppresses the enqueue.
- claim moves ready ids to claimed with a lease; expired leases (a crashed worker) first return to
  pending (counted as an attempt; past max_attempts they go to the dead letters).
- ack removes the id only if no delivery arrived since the claim; otherwise it goes back to pending.
- nack counts an attempt and sets the not-before time (exponential backoff); after max_attempts
  (and no new delivery during the claim) the id moves to the dead-letter outbox.
A stale ack/nack (the lease expired and someone else owns the id now) changes nothing.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal, TypedDict, Unpack, cast

import redis

from include.queue.pipelined_redis import PipelinedRedis, Script

DEFAULT_PREFIX = "vmh:webhook"
EVENT_KINDS = ("create", "update", "delete", "replay")
Kind = Literal["create", "update", "delete", "replay"]
AckOutcome = Literal["done", "requeued", "stale"]
NackOutcome = Literal["retry", "dead", "stale"]

# KEYS: pending, claimed, outbox, stats, seen, item_1..item_n
# ARGV: now, kind, seen_ttl, n, id_1..id_n, rejected_json...
_ENQUEUE = """
local now = tonumber(ARGV[1]); local kind = ARGV[2]
local ttl = tonumber(ARGV[3]); local n = tonumber(ARGV[4])
local dup = 0
if KEYS[5] ~= '' then
  if not redis.call('SET', KEYS[5], 1, 'NX', 'EX', ttl) then
    dup = 1
    redis.call('INCR', KEYS[5])
  end
end
-- the gateway's hot path: as few calls per id as the rules allow (Redis time is most of its cost)
for i = 1, n do
  local id = ARGV[4 + i]; local item = KEYS[5 + i]
  -- gen counts the deliveries since the item was queued; 1 = a new item (an acked one is deleted)
  if redis.call('HINCRBY', item, 'gen', 1) == 1 then
    redis.call('HSET', item, 'last_kind', kind, 'last_seen', ARGV[1], 'seen_' .. kind, 1, 'first_seen', ARGV[1])
  else
    redis.call('HSET', item, 'last_kind', kind, 'last_seen', ARGV[1], 'seen_' .. kind, 1)
  end
  if not redis.call('ZSCORE', KEYS[2], id) then
    -- NX keeps a not-before time of a failed id (its backoff still holds)
    redis.call('ZADD', KEYS[1], 'NX', now, id)
  end
end
local rejected = 0
for i = 5 + n, #ARGV do
  redis.call('RPUSH', KEYS[3], ARGV[i]); rejected = rejected + 1
end
redis.call('HINCRBY', KEYS[4], 'deliveries', 1)
-- wakes the DAG's waiting trigger (pub/sub channel named like the pending set; nobody listening is fine)
if n > 0 then redis.call('HINCRBY', KEYS[4], 'accepted', n); redis.call('PUBLISH', KEYS[1], n) end
if dup > 0 then redis.call('HINCRBY', KEYS[4], 'duplicates', dup) end
if rejected > 0 then redis.call('HINCRBY', KEYS[4], 'rejected', rejected) end
return dup
"""

# KEYS: pending, claimed, outbox, stats; ARGV: now, lease_s, limit, token, prefix, max_attempts
_CLAIM = """
local now = tonumber(ARGV[1]); local lease = tonumber(ARGV[2]); local limit = tonumber(ARGV[3])
local token = ARGV[4]; local prefix = ARGV[5]; local max_attempts = tonumber(ARGV[6])
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 1000)
for _, id in ipairs(expired) do
  local item = prefix .. ':item:' .. id
  redis.call('ZREM', KEYS[2], id)
  redis.call('HDEL', item, 'claim', 'claim_gen')
  redis.call('HINCRBY', item, 'lease_expired', 1)
  local attempts = redis.call('HINCRBY', item, 'attempts', 1)
  if attempts >= max_attempts then
    local f = redis.call('HMGET', item, 'last_kind', 'first_seen', 'seen_delete', 'last_error')
    redis.call('RPUSH', KEYS[3], cjson.encode({source = 'beteiligte_sync', entity_id = id,
      reason = 'lease expired ' .. attempts .. ' times (worker crashed or hung); last error: '
        .. tostring(f[4]),
      attempts = attempts, payload = {last_kind = f[1], first_seen = f[2], seen_delete = f[3]}}))
    redis.call('DEL', item)
    redis.call('HINCRBY', KEYS[4], 'dead', 1)
  else
    redis.call('ZADD', KEYS[1], now, id)
  end
end
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, limit)
local out = {}
for _, id in ipairs(ids) do
  local item = prefix .. ':item:' .. id
  redis.call('ZREM', KEYS[1], id)
  redis.call('ZADD', KEYS[2], now + lease, id)
  local gen = redis.call('HGET', item, 'gen') or '0'
  redis.call('HSET', item, 'claim', token, 'claim_gen', gen)
  out[#out + 1] = {id, redis.call('HGETALL', item)}
end
return out
"""

# KEYS: pending, claimed, item; ARGV: id, token, now
_ACK = """
if redis.call('HGET', KEYS[3], 'claim') ~= ARGV[2] then return 'stale' end
redis.call('ZREM', KEYS[2], ARGV[1])
if redis.call('HGET', KEYS[3], 'gen') == redis.call('HGET', KEYS[3], 'claim_gen') then
  redis.call('DEL', KEYS[3])
  return 'done'
end
-- a delivery arrived while the claim was in flight: that change must be synced again
redis.call('HDEL', KEYS[3], 'claim', 'claim_gen', 'last_error')
redis.call('HSET', KEYS[3], 'attempts', 0)
redis.call('ZADD', KEYS[1], tonumber(ARGV[3]), ARGV[1])
return 'requeued'
"""

# KEYS: pending, claimed, item, outbox, stats; ARGV: id, token, now, error, max_attempts, base_s, cap_s
_NACK = """
if redis.call('HGET', KEYS[3], 'claim') ~= ARGV[2] then return {'stale', 0, 0} end
local now = tonumber(ARGV[3])
redis.call('ZREM', KEYS[2], ARGV[1])
local attempts = redis.call('HINCRBY', KEYS[3], 'attempts', 1)
local changed = redis.call('HGET', KEYS[3], 'gen') ~= redis.call('HGET', KEYS[3], 'claim_gen')
redis.call('HSET', KEYS[3], 'last_error', ARGV[4])
redis.call('HDEL', KEYS[3], 'claim', 'claim_gen')
if attempts >= tonumber(ARGV[5]) and not changed then
  local f = redis.call('HMGET', KEYS[3], 'last_kind', 'first_seen', 'seen_delete')
  redis.call('RPUSH', KEYS[4], cjson.encode({source = 'beteiligte_sync', entity_id = ARGV[1],
    reason = ARGV[4], attempts = attempts,
    payload = {last_kind = f[1], first_seen = f[2], seen_delete = f[3]}}))
  redis.call('DEL', KEYS[3])
  redis.call('HINCRBY', KEYS[5], 'dead', 1)
  return {'dead', attempts, 0}
end
local delay = math.min(tonumber(ARGV[6]) * math.pow(2, attempts - 1), tonumber(ARGV[7]))
local not_before = now + delay
redis.call('ZADD', KEYS[1], not_before, ARGV[1])
return {'retry', attempts, tostring(not_before)}
"""

# KEYS: lock; ARGV: token — delete only our own lock
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass(frozen=True)
class RejectedItem:
    """An item of a delivery that can never be synced (no valid id); parked as a dead letter."""

    index: int
    reason: str
    payload: Any = None


class EnqueueOptions(TypedDict, total=False):
    """What `enqueue` takes besides the ids and the event kind (the same for the sync and async queue)."""

    body: bytes | None  # the raw body: feeds the dedup count
    rejected: Iterable[RejectedItem]  # items parked as dead letters in the same atomic step
    now: float | None


@dataclass(frozen=True)
class EnqueueResult:
    accepted: int
    duplicate: bool  # the exact (event, body) was delivered before (counted, never suppressed)

    @classmethod
    def of(cls, ids: list[str], reply: Any) -> EnqueueResult:
        """From the enqueue script's reply (1 when the body was seen before)."""
        return cls(accepted=len(set(ids)), duplicate=bool(int(reply)))


@dataclass(frozen=True)
class ClaimedParty:
    id: str
    token: str
    gen: int
    attempts: int
    last_kind: str | None
    kinds: frozenset[str] = frozenset()  # the event kinds delivered since it was queued
    first_seen: float | None = None
    last_error: str | None = None

    @property
    def deliveries(self) -> int:
        """Deliveries since it was queued: what `gen` counts."""
        return self.gen

    @property
    def delete_seen(self) -> bool:
        return "delete" in self.kinds


@dataclass(frozen=True)
class NackResult:
    outcome: NackOutcome
    attempts: int
    not_before: float | None = None


@dataclass(frozen=True)
class QueueStats:
    pending: int
    ready: int
    claimed: int
    expired_claims: int
    oldest_ready_age_s: float
    outbox: int
    counters: dict[str, int]

    def as_dict(self) -> dict[str, Any]:
        """Flat: the counters as keys of their own; the outbox named for what it holds."""
        fields = asdict(self)
        counters = fields.pop("counters")
        fields["dead_letter_outbox"] = fields.pop("outbox")
        return {**fields, **counters}


def body_hash(kind: str, body: bytes) -> str:
    """Identity of one delivery: the event (the URL is EspoCRM's only discriminator) and the raw body."""
    return hashlib.sha256(kind.encode() + b"\n" + body).hexdigest()


def _dead_letter_json(kind: str, r: RejectedItem) -> str:
    return json.dumps(
        {
            "source": "webhook",
            "entity_id": None,
            "reason": r.reason,
            "attempts": 0,
            "payload": {"event": kind, "index": r.index, "item": r.payload},
        },
        default=str,
    )


class _Keys:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.pending = f"{prefix}:pending"
        self.claimed = f"{prefix}:claimed"
        self.stats = f"{prefix}:stats"
        self.outbox = f"{prefix}:deadletters:outbox"
        self.outbox_lock = f"{prefix}:deadletters:lock"

    def item(self, party_id: str) -> str:
        return f"{self.prefix}:item:{party_id}"

    def seen(self, digest: str) -> str:
        return f"{self.prefix}:seen:{digest}"

    def enqueue_args(
        self,
        ids: list[str],
        kind: str,
        seen_ttl_s: int,
        *,
        body: bytes | None = None,
        rejected: Iterable[RejectedItem] = (),
        now: float | None = None,
    ) -> tuple[list[str], list[Any]]:
        digest = body_hash(kind, body) if body is not None else None
        if kind not in EVENT_KINDS:
            raise ValueError(f"unknown event kind {kind!r}")
        unique = list(dict.fromkeys(ids))  # one id twice in a batch is one unit of work
        keys = [
            self.pending,
            self.claimed,
            self.outbox,
            self.stats,
            self.seen(digest) if digest else "",
            *(self.item(i) for i in unique),
        ]
        argv: list[Any] = [
            repr(_now(now)),
            kind,
            seen_ttl_s,
            len(unique),
            *unique,
            *(_dead_letter_json(kind, r) for r in rejected),
        ]
        return keys, argv


def _now(now: float | None) -> float:
    return time.time() if now is None else now


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _parse_claimed(token: str, row: list[Any]) -> ClaimedParty:
    party_id = _s(row[0])
    flat = [_s(v) for v in row[1]]
    h = dict(zip(flat[0::2], flat[1::2], strict=True))
    kinds = frozenset(k for k in EVENT_KINDS if f"seen_{k}" in h)
    return ClaimedParty(
        id=party_id,
        token=token,
        gen=int(h.get("gen", 0)),
        attempts=int(h.get("attempts", 0)),
        last_kind=h.get("last_kind"),
        kinds=kinds,
        first_seen=float(h["first_seen"]) if "first_seen" in h else None,
        last_error=h.get("last_error"),
    )


class PartyQueue:
    """Synchronous API (DAG tasks, CLI, tests). All times are unix seconds; `now` is injectable."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        prefix: str = DEFAULT_PREFIX,
        max_attempts: int = 5,
        lease_s: float = 300.0,
        backoff_base_s: float = 30.0,
        backoff_max_s: float = 3600.0,
        seen_ttl_s: int = 86400,
    ) -> None:
        self.r = client
        self.keys = _Keys(prefix)
        self.max_attempts = max_attempts
        self.lease_s = lease_s
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.seen_ttl_s = seen_ttl_s
        self._enqueue = client.register_script(_ENQUEUE)
        self._claim = client.register_script(_CLAIM)
        self._ack = client.register_script(_ACK)
        self._nack = client.register_script(_NACK)
        self._release = client.register_script(_RELEASE)

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> PartyQueue:
        client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5, health_check_interval=30)
        return cls(client, **kwargs)

    @classmethod
    def from_settings(cls, settings: Any, **kwargs: Any) -> PartyQueue:
        """From include.settings.Settings: REDIS_URL, SYNC_PARTY_MAX_ATTEMPTS, SYNC_PARTY_LEASE_S."""
        kwargs.setdefault("max_attempts", settings.sync.party_max_attempts)
        kwargs.setdefault("lease_s", settings.sync.party_lease_s)
        return cls.from_url(settings.redis_url, **kwargs)

    # -- producer side ------------------------------------------------------------------------
    def enqueue(self, ids: list[str], kind: Kind, **options: Unpack[EnqueueOptions]) -> EnqueueResult:
        """Mark ids pending (and park rejected items) in one atomic step; `body` feeds the dedup count."""
        keys, argv = self.keys.enqueue_args(ids, kind, self.seen_ttl_s, **options)
        return EnqueueResult.of(ids, self._enqueue(keys=keys, args=argv))

    # -- consumer side ------------------------------------------------------------------------
    def claim(self, limit: int = 50, *, lease_s: float | None = None, now: float | None = None) -> list[ClaimedParty]:
        """Atomically take up to `limit` ready ids with a lease (expired leases are returned first)."""
        token = uuid.uuid4().hex
        k = self.keys
        rows = self._claim(
            keys=[k.pending, k.claimed, k.outbox, k.stats],
            args=[repr(_now(now)), repr(float(lease_s or self.lease_s)), limit, token, k.prefix, self.max_attempts],
        )
        return [_parse_claimed(token, row) for row in rows]

    def ack(self, party: ClaimedParty, *, now: float | None = None) -> AckOutcome:
        k = self.keys
        out = self._ack(keys=[k.pending, k.claimed, k.item(party.id)], args=[party.id, party.token, repr(_now(now))])
        return cast(AckOutcome, _s(out))  # the _ACK script answers nothing else

    def nack(self, party: ClaimedParty, error: str, *, now: float | None = None) -> NackResult:
        """Count a failed attempt: back off (not before now + base·2^(n-1), capped) or dead-letter."""
        k = self.keys
        out = self._nack(
            keys=[k.pending, k.claimed, k.item(party.id), k.outbox, k.stats],
            args=[
                party.id,
                party.token,
                repr(_now(now)),
                error[:2000],
                self.max_attempts,
                self.backoff_base_s,
                self.backoff_max_s,
            ],
        )
        # the _NACK script answers one of NackOutcome
        outcome, attempts, not_before = cast(NackOutcome, _s(out[0])), int(out[1]), _s(out[2])
        return NackResult(outcome, attempts, float(not_before) if outcome == "retry" else None)

    def extend_lease(self, party: ClaimedParty, lease_s: float | None = None, *, now: float | None = None) -> bool:
        """Keep a long-running claim alive; False when the claim was lost (lease expired meanwhile)."""
        k = self.keys
        if _s(self.r.hget(k.item(party.id), "claim") or b"") != party.token:
            return False
        self.r.zadd(k.claimed, {party.id: (_now(now)) + (lease_s or self.lease_s)}, xx=True)
        return True

    def item(self, party_id: str) -> dict[str, str]:
        return {_s(a): _s(b) for a, b in self.r.hgetall(self.keys.item(party_id)).items()}

    def stats(self, *, now: float | None = None) -> QueueStats:
        now = _now(now)
        k = self.keys
        p = self.r.pipeline(transaction=True)
        # one call per command: redis-py types a pipeline's commands as their results, so they do not chain
        p.zcard(k.pending)
        p.zcount(k.pending, "-inf", now)
        p.zcard(k.claimed)
        p.zcount(k.claimed, "-inf", now)
        p.zrange(k.pending, 0, 0, withscores=True)
        p.llen(k.outbox)
        p.hgetall(k.stats)
        pending, ready, claimed, expired, oldest, outbox, counters = p.execute()
        age = max(0.0, now - oldest[0][1]) if oldest and oldest[0][1] <= now else 0.0
        return QueueStats(
            pending, ready, claimed, expired, round(age, 3), outbox, {_s(a): int(b) for a, b in counters.items()}
        )

    # -- dead letters ---------------------------------------------------------------------------
    def drain_dead_letter_outbox(self, sink: Callable[[Mapping[str, Any]], None], *, limit: int = 1000) -> int:
        """Hand parked dead letters to `sink` (the hub insert), oldest first; removed only after the sink
        returned, so a crash repeats an entry rather than losing it. One drainer at a time (lock)."""
        k = self.keys
        token = uuid.uuid4().hex
        if not self.r.set(k.outbox_lock, token, nx=True, px=30_000):
            return 0
        done = 0
        try:
            while done < limit:
                raw = self.r.lindex(k.outbox, 0)
                if raw is None:
                    break
                sink(json.loads(raw))
                self.r.lpop(k.outbox)
                done += 1
        finally:
            self._release(keys=[k.outbox_lock], args=[token])
        return done


class AsyncPartyQueue:
    """The gateway's side: the enqueue, on one pipelined connection (see pipelined_redis), same script
    and keys as PartyQueue."""

    _ENQUEUE_SCRIPT = Script(_ENQUEUE)

    def __init__(self, client: PipelinedRedis, *, prefix: str = DEFAULT_PREFIX, seen_ttl_s: int = 86400) -> None:
        self.r = client
        self.keys = _Keys(prefix)
        self.seen_ttl_s = seen_ttl_s

    @classmethod
    def from_url(cls, url: str, *, timeout_s: float = 3.0, **kwargs: Any) -> AsyncPartyQueue:
        # A quick connect timeout: an unreachable Redis must turn into a quick 503.
        return cls(PipelinedRedis(url, connect_timeout_s=1.0, reply_timeout_s=timeout_s), **kwargs)

    async def enqueue(self, ids: list[str], kind: Kind, **options: Unpack[EnqueueOptions]) -> EnqueueResult:
        """One atomic script; Redis down or silent for timeout_s → a redis.RedisError (the caller's 503)."""
        keys, argv = self.keys.enqueue_args(ids, kind, self.seen_ttl_s, **options)
        return EnqueueResult.of(ids, await self.r.evalsha(self._ENQUEUE_SCRIPT, keys, argv))

    async def close(self) -> None:
        await self.r.close()
