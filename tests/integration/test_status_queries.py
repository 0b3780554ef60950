"""The status view's queries and page against a real hub and Redis: the counts and ids an administrator
reads, and none of the client data the same hub holds (appointment texts, party names, payloads)."""

from __future__ import annotations

import json
import socket
import time

import psycopg
import pytest
import redis

from include.hub.status import CLIP_CHARS, StatusQuery
from include.queue.party_queue import PartyQueue
from include.status.page import render
from include.status.queries import Sources, collect

# Client data planted in columns the view must never select.
SECRETS = (
    "Erika Mustermann",
    "Scheidungstermin",
    "Kanzlei Geheim GmbH",
    "erika@example.org",
    "sync-token-value",
    "fp-advoware-1",
)


def _seed_hub(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("""INSERT INTO employee_calendars (employee, email, calendar_id, mode, sync_token,
                     last_full_sync_at) VALUES
                     ('ABC', 'erika@example.org', 'cal-abc@group.calendar.google.com', 'shared',
                      'sync-token-value', '2026-01-02T03:04:05+00'),
                     ('XYZ', NULL, 'xyz@kanzlei.test', 'delegated', NULL, NULL)""")
        links = [("ABC", n, "linked", None) for n in range(1, 4)] + [
            ("ABC", 4, "failed", "Termin 'Scheidungstermin Erika Mustermann': Advoware 500"),
            ("ABC", 5, "conflict", None),
            ("ABC", 6, "deleted", None),
            ("XYZ", 7, "pending", None),
            ("XYZ", 8, "pending", None),
            ("QQQ", 9, "unsupported", "RRULE BYSETPOS for Kanzlei Geheim GmbH"),
        ]
        for emp, frnr, status, err in links:
            c.execute(
                "INSERT INTO calendar_links (employee, frnr, status, last_error, advoware_fingerprint)"
                " VALUES (%s, %s, %s, %s, 'fp-advoware-1')",
                (emp, frnr, status, err),
            )
        c.execute(
            """INSERT INTO sync_runs (run_id, kind, employee, started_at, finished_at, status, counts,
                     error) VALUES
                     ('r1', 'calendar', 'ABC', now() - interval '2 hours', now() - interval '2 hours',
                      'failed', '{}', 'old failure'),
                     ('r2', 'calendar', 'ABC', now() - interval '5 minutes', now() - interval '4 minutes',
                      'success', '{"created_google": 3, "updated": 1, "note": "Erika Mustermann"}', NULL),
                     ('r2', 'calendar', 'XYZ', now() - interval '5 minutes', now() - interval '4 minutes',
                      'stopped', '{}', %s),
                     ('p1', 'beteiligte', NULL, now() - interval '1 minute', now(), 'success',
                      '{"synced": 4, "failed": 1}', NULL)""",
            ("delete threshold exceeded: 40 of 50 links for employee XYZ " + "x" * 300,),
        )
        c.execute("""INSERT INTO sync_plans (run_id, employee, plan) VALUES
                     ('r2', 'ABC', '{"actions": [{"title": "Scheidungstermin Erika Mustermann"}]}')""")
        c.execute("""INSERT INTO party_links (espo_id, bet_nr, status, last_error, last_synced_at) VALUES
                     ('e1', 101, 'linked', NULL, '2026-01-01T10:00:00+00'),
                     ('e2', 102, 'linked', NULL, '2026-01-01T11:00:00+00'),
                     ('e3', NULL, 'failed', 'Kanzlei Geheim GmbH: name too long', NULL)""")
        c.execute("""INSERT INTO dead_letters (source, entity_id, reason, payload, attempts, replayed_at) VALUES
                     ('webhook', NULL, 'item 2 has no id', '{"item": {"name": "Erika Mustermann"}}', 0, NULL),
                     ('beteiligte_sync', 'e3', 'Advoware 400 for e3', '{"last_kind": "update"}', 5, NULL),
                     ('beteiligte_sync', 'e9', '<script>alert(1)</script>', NULL, 5, NULL),
                     ('beteiligte_sync', 'e7', 'replayed already', NULL, 5, now())""")
        for i in range(25):
            c.execute(
                """INSERT INTO write_audit (actor, method, target, status, detail)
                         VALUES ('proxy', 'POST', %s, %s, 'Kanzlei Geheim GmbH')""",
                (f"/api/advoware/Termine/{i}", 201 if i % 5 else 403),
            )


@pytest.fixture
def seeded(hub: str, redis_url: str) -> Sources:
    _seed_hub(hub)
    queue = PartyQueue.from_url(redis_url)
    queue.enqueue(["e1", "e2"], "update", now=time.time() - 120)
    queue.enqueue(["e4"], "create")
    return Sources.from_urls(hub, redis_url)


def test_collect_shows_the_state_per_employee(seeded: Sources) -> None:
    status = collect(seeded)
    assert status["ok"] is True and status["errors"] == {}
    emps = {e["employee"]: e for e in status["employees"]}
    assert list(emps) == ["ABC", "QQQ", "XYZ"]

    abc = emps["ABC"]
    assert abc["calendar"] == {
        "calendar_id": "cal-abc@group.calendar.google.com",
        "mode": "shared",
        "active": True,
        "last_full_sync_at": "2026-01-02T03:04:05+00:00",
        "has_sync_token": True,
    }
    assert abc["links"] == {
        "linked": 3,
        "pending": 0,
        "failed": 1,
        "conflict": 1,
        "unsupported": 0,
        "deleted": 1,
        "skipped": 0,
        "total": 6,
    }
    # The newest run, and only the numbers of its counts.
    assert abc["last_run"]["run_id"] == "r2" and abc["last_run"]["status"] == "success"
    assert abc["last_run"]["counts"] == {"created_google": 3, "updated": 1}

    assert emps["XYZ"]["calendar"]["has_sync_token"] is False
    assert emps["XYZ"]["calendar"]["mode"] == "delegated"
    assert emps["XYZ"]["links"]["pending"] == 2
    err = emps["XYZ"]["last_run"]["error"]
    assert err.startswith("delete threshold exceeded") and len(err) == CLIP_CHARS
    # Links without a calendar row still show up: the admin must see the gap.
    assert emps["QQQ"]["calendar"] is None and emps["QQQ"]["links"]["unsupported"] == 1
    assert emps["QQQ"]["last_run"] is None


def test_collect_shows_parties_dead_letters_queue_and_writes(seeded: Sources) -> None:
    status = collect(seeded, StatusQuery(audit_limit=20))
    assert status["party_links"]["by_status"] == {"linked": 2, "unlinked": 0, "deleted": 0, "failed": 1}
    assert status["party_links"]["total"] == 3
    assert status["party_links"]["last_synced_at"] == "2026-01-01T11:00:00+00:00"
    assert status["party_run"]["run_id"] == "p1" and status["party_run"]["counts"] == {"failed": 1, "synced": 4}

    dl = status["dead_letters"]
    assert dl["open"] == 3 and dl["by_source"] == {"beteiligte_sync": 2, "webhook": 1}
    assert [d["id"] for d in dl["newest"]] == [3, 2, 1]  # newest first; the replayed one is not open
    assert dl["newest"][1] | {"created_at": None} == {
        "id": 2,
        "source": "beteiligte_sync",
        "entity_id": "e3",
        "reason": "Advoware 400 for e3",
        "attempts": 5,
        "created_at": None,
    }

    q = status["queue"]
    assert (q["pending"], q["ready"], q["claimed"]) == (3, 3, 0)
    assert 119 <= q["oldest_ready_age_s"] < 180
    assert q["accepted"] == 3 and q["deliveries"] == 2

    writes = status["writes"]
    assert len(writes) == 20
    assert writes[0] == {
        "id": 25,
        "at": writes[0]["at"],
        "actor": "proxy",
        "method": "POST",
        "target": "/api/advoware/Termine/24",
        "status": 201,
    }
    assert writes[-1]["id"] == 6 and [w["status"] for w in writes[:5]] == [201, 201, 201, 201, 403]


def test_no_client_data_reaches_page_or_json(seeded: Sources) -> None:
    status = collect(seeded)
    text = json.dumps(status)
    page = render(status)
    for secret in SECRETS:
        assert secret not in text, secret
        assert secret not in page, secret
    # What the admin needs is there.
    for shown in (
        "ABC",
        "XYZ",
        "QQQ",
        "cal-abc@group.calendar.google.com",
        "e3",
        "/api/advoware/Termine/24",
        "delete threshold exceeded",
        "Advoware 400 for e3",
    ):
        assert shown in page, shown


def test_page_escapes_every_value(seeded: Sources) -> None:
    page = render(collect(seeded))
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_unreachable_hub_and_redis_are_reported_not_raised(hub: str) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sources = Sources(
        f"postgresql://postgres@127.0.0.1:{port}/x", redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=1)
    )
    status = collect(sources)
    assert status["ok"] is False
    assert status["errors"] == {"hub": "OperationalError", "queue": "ConnectionError"}
    assert status["employees"] == [] and status["queue"] is None
    page = render(status)
    assert "Could not read: hub (OperationalError), queue (ConnectionError)" in page


def test_empty_hub_renders(hub: str, redis_url: str) -> None:
    status = collect(Sources.from_urls(hub, redis_url))
    assert status["ok"] and status["employees"] == [] and status["dead_letters"]["open"] == 0
    assert status["queue"]["pending"] == 0 and status["queue"]["oldest_ready_age_s"] == 0.0
    assert "Open dead letters: 0" in render(status)


def test_activity_of_the_last_7_days_and_its_chart(hub: str, redis_url: str) -> None:
    """The chart's numbers per UTC day: calendar writes per side from the phase counts, failures,
    parked items and party dead letters by the day they were parked, party writes from the run rows."""
    import re
    from datetime import UTC, datetime

    now = datetime(2026, 3, 10, 0, 30, tzinfo=UTC)  # just after midnight UTC (01:30 in Berlin)
    phases = json.dumps(
        {
            "plan": {"create_google": 9},
            "token_saved": True,
            "phase1": {"google.created": 3, "google.adopted": 1, "google.parked": 1},
            "phase2": {"advoware.created": 2},
            "phase3": {"google.deleted": 1, "advoware.failed": 1},
            "phase4": {"google.updated": 4, "advoware.updated": 1, "google.failed": 2},
        }
    )
    with psycopg.connect(hub, autocommit=True) as c:
        c.execute(
            """INSERT INTO sync_runs (run_id, kind, employee, started_at, status, counts) VALUES
                     ('r1', 'calendar', 'ABC', '2026-03-10T00:10:00+00', 'failed', %s),
                     ('r1', 'calendar', 'XYZ', '2026-03-09T23:50:00+00', 'success', %s),
                     ('r0', 'calendar', 'ABC', '2026-03-02T12:00:00+00', 'success', %s),
                     ('p1', 'beteiligte', NULL, '2026-03-08T10:00:00+00', 'success',
                      '{"advoware_writes": 5, "retried": 2, "dead": 1}'),
                     ('p2', 'beteiligte', NULL, '2026-03-08T11:00:00+00', 'success', '{"advoware_writes": 1}')""",
            (phases, phases, phases),
        )  # r0 is older than 7 days
        c.execute("""INSERT INTO dead_letters (source, entity_id, reason, created_at) VALUES
                     ('calendar_sync', 'ABC:1', 'x', '2026-03-10T00:11:00+00'),
                     ('beteiligte_sync', 'e1', 'x', '2026-03-08T10:00:00+00'),
                     ('webhook', NULL, 'x', '2026-03-07T10:00:00+00')""")
    status = collect(Sources.from_urls(hub, redis_url), now=now)
    act = status["activity"]
    assert act["days"] == [f"2026-03-{d:02d}" for d in range(4, 11)]
    assert act["calendar"] == {
        "google_writes": [0, 0, 0, 0, 0, 8, 8],
        "advoware_writes": [0, 0, 0, 0, 0, 3, 3],
        "failed": [0, 0, 0, 0, 0, 3, 3],
        "parked": [0, 0, 0, 0, 0, 0, 1],
    }
    assert act["parties"] == {
        "advoware_writes": [0, 0, 0, 0, 6, 0, 0],
        "failed": [0, 0, 0, 0, 2, 0, 0],
        "dead": [0, 0, 0, 1, 1, 0, 0],
    }
    # the last calendar run's counts as the page shows them: per side, summed over the phases
    abc = next(e for e in status["employees"] if e["employee"] == "ABC")
    assert abc["last_run"]["counts"]["google.created"] == 3 and abc["last_run"]["counts"]["google.failed"] == 2

    page = render(status)

    def bars(figure: str) -> dict[tuple[str, str], int]:
        svg = page.split(f"<figure id={figure}>", 1)[1].split("</figure>", 1)[0]
        return {
            (m["series"], m["day"]): int(m["value"])
            for m in re.finditer(
                r'data-series="(?P<series>[^"]+)" data-day="(?P<day>[^"]+)" data-value="(?P<value>\d+)"', svg
            )
        }

    calendar, parties = bars("chart-calendar"), bars("chart-parties")
    assert (len(calendar), len(parties)) == (7 * 4, 7 * 3)
    assert calendar[("google_writes", "2026-03-10")] == 8 and calendar[("parked", "2026-03-10")] == 1
    assert calendar[("advoware_writes", "2026-03-09")] == 3 and calendar[("failed", "2026-03-04")] == 0
    assert parties[("dead", "2026-03-07")] == 1 and parties[("advoware_writes", "2026-03-08")] == 6
    assert "<script" not in page and page.count("<svg") == 2


def test_every_time_on_the_page_says_utc(seeded: Sources) -> None:
    import re

    page = render(collect(seeded))
    assert "All times in UTC" in page
    times = re.findall(r"<time class=t datetime=\"([^\"]+)\">([^<]+)</time>", page)
    assert times and all(shown.endswith(" UTC") and iso.endswith("+00:00") for iso, shown in times)
    assert ("2026-01-02T03:04:05+00:00", "2026-01-02 03:04:05 UTC") in times  # ABC's last full sync
