"""Trap: events with attendees, a video call, attachments, a colour, "free", "tentative".

What a user checks: the sync never makes Google mail anyone (the sandbox counts the mails Google would
send); attendees' addresses never reach Advoware; and nothing the sync does not map is lost from a
Google event when the sync writes to it: it writes the current event with only the mapped fields
replaced. `tentative` and free/busy (transparency) are left alone (Advoware has no field for them).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import pytest

from include.calendar_engine.ids import event_id
from include.calendar_sync.context import SyncContext
from tests.calendar_helpers import calendar_events, calendar_ids, termine
from tests.trap_helpers import (
    EMPLOYEE,
    advoware_termin,
    days,
    mails,
    person,
    quiet,
    seed_employee,
    sync,
    trap_ctx,
)

pytestmark = pytest.mark.timeout(180)

GUEST, CLIENT = "kollege@kanzlei.example", "mandantin@example.org"
MEET = {"createRequest": {"requestId": "trap-1", "conferenceSolutionKey": {"type": "hangoutsMeet"}}}
FILE = {"fileUrl": "https://drive.google.com/open?id=4711", "title": "Klageschrift.pdf"}
# what a person sets in Google that Advoware has no field for
UNMAPPED = {
    "attendees": [{"email": GUEST}, {"email": CLIENT, "optional": True}],
    "colorId": "5",
    "transparency": "transparent",
    "status": "tentative",
    "guestsCanModify": True,
    "guestsCanInviteOthers": False,
    "guestsCanSeeOtherGuests": False,
    "attachments": [FILE],
}
KEPT = (
    "attendees",
    "colorId",
    "transparency",
    "status",
    "guestsCanModify",
    "guestsCanInviteOthers",
    "guestsCanSeeOtherGuests",
    "attachments",
    "conferenceData",
    "hangoutLink",
)


@pytest.fixture
def ctx(advoware_url: str, google_url: str, redis_url: str, hub: str, tmp_path: Path) -> Iterator[SyncContext]:
    start = datetime.combine(date.today() + days(5), time(10))
    seed_employee(
        advoware_url,
        [
            advoware_termin("Gerichtstermin", start, start.replace(hour=11)),
            advoware_termin("Mandantengespräch", start + days(1), start.replace(hour=11) + days(1)),
        ],
    )
    c = trap_ctx(advoware_url, google_url, redis_url, hub, tmp_path)
    yield c
    c.close()


def _advoware_bodies(ctx: SyncContext, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Every body the sync sends to Advoware (the sandbox would drop unknown fields: look at the wire)."""
    sent: list[dict[str, Any]] = []
    for name in ("create_termin", "update_termin"):
        real = getattr(ctx.advoware, name)

        def spy(*args: Any, _real: Any = real, **kw: Any) -> Any:
            sent.append(args[-1])
            return _real(*args, **kw)

        monkeypatch.setattr(ctx.advoware, name, spy)
    return sent


def _decorate(google: Any, calendar_id: str, gid: str) -> dict[str, Any]:
    """The employee adds guests, a Meet call, a file, a colour, "free" and "tentative" in Google."""
    current = google.events().get(calendarId=calendar_id, eventId=gid).execute()
    return (
        google.events()
        .update(
            calendarId=calendar_id,
            eventId=gid,
            sendUpdates="all",
            conferenceDataVersion=1,
            supportsAttachments=True,
            body={**current, **UNMAPPED, "conferenceData": MEET},
        )
        .execute()
    )


def test_unmapped_fields_survive_the_syncs_writes_and_no_mail_leaves(
    ctx: SyncContext, advoware_url: str, google_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert sync(ctx)["status"] == "success"
    calendar_id = calendar_ids(ctx.hub_dsn)[EMPLOYEE]
    google = person(ctx)
    court = next(t for t in termine(advoware_url, EMPLOYEE) if t["text"] == "Gerichtstermin")
    gid = event_id(EMPLOYEE, court["frNr"])
    decorated = _decorate(google, calendar_id, gid)
    assert decorated["hangoutLink"] and decorated["status"] == "tentative"
    # a person's own event with guests and a video call, with a source only its creator sees
    day = (date.today() + days(9)).isoformat()
    own = (
        google.events()
        .insert(
            calendarId=calendar_id,
            sendUpdates="all",
            conferenceDataVersion=1,
            supportsAttachments=True,
            body={
                "summary": "Vergleichsgespräch",
                **UNMAPPED,
                "conferenceData": MEET,
                "source": {"title": "Mail", "url": "https://mail.kanzlei.example/1"},
                "start": {"dateTime": f"{day}T14:00:00", "timeZone": "Europe/Berlin"},
                "end": {"dateTime": f"{day}T15:00:00", "timeZone": "Europe/Berlin"},
            },
        )
        .execute()
    )
    mailed_by_person = mails(google_url)
    sent = _advoware_bodies(ctx, monkeypatch)

    assert sync(ctx)["status"] == "success"  # carries the new event into Advoware
    created = [t for t in termine(advoware_url, EMPLOYEE) if t["text"] == "Vergleichsgespräch"]
    assert len(created) == 1
    # Advoware changes both appointments: the sync writes them to Google (PUT of the whole event)
    for t in (court, created[0]):
        ctx.advoware.update_termin(t["frNr"], {**t, "text": t["text"] + " (verlegt)", "ort": "Saal 7"})
    assert sync(ctx)["status"] == "success"

    for before, eid in ((decorated, gid), (own, own["id"])):
        after = google.events().get(calendarId=calendar_id, eventId=eid).execute()
        assert after["summary"].endswith("(verlegt)") and after["location"] == "Saal 7"
        for name in KEPT:
            assert after[name] == before[name], name
    assert google.events().get(calendarId=calendar_id, eventId=own["id"]).execute()["source"] == own["source"]
    assert mails(google_url) == mailed_by_person  # the sync mailed no one
    wire = json.dumps(sent)
    assert sent and GUEST not in wire and CLIENT not in wire and "meet.google.com" not in wire
    assert quiet(ctx, advoware_url, google_url)  # and nothing flip-flops

    ctx.advoware.delete_termin(court["frNr"])  # cancelled in Advoware: the guests are not told by the sync
    assert sync(ctx)["status"] == "success"
    assert google.events().get(calendarId=calendar_id, eventId=gid).execute()["status"] == "cancelled"
    assert mails(google_url) == mailed_by_person


def test_an_adopted_event_keeps_its_guests(ctx: SyncContext, advoware_url: str, google_url: str) -> None:
    """An event a person made before the first run, matching an Advoware appointment, is adopted and
    rewritten with the marker: its guests and call stay, no one is mailed."""
    assert sync(ctx)["status"] == "success"
    calendar_id = calendar_ids(ctx.hub_dsn)[EMPLOYEE]
    google = person(ctx)
    start = datetime.combine(date.today() + days(12), time(9))
    when = {
        "start": {"dateTime": start.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "Europe/Berlin"},
        "end": {"dateTime": start.replace(hour=10).strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "Europe/Berlin"},
    }
    made = (
        google.events()
        .insert(
            calendarId=calendar_id,
            conferenceDataVersion=1,
            supportsAttachments=True,
            body={"summary": "Ortstermin", **when, **UNMAPPED, "conferenceData": MEET},
        )
        .execute()
    )
    ctx.advoware.create_termin(advoware_termin("Ortstermin", start, start.replace(hour=10), notiz="Baustelle"))
    before = mails(google_url)
    assert sync(ctx)["status"] == "success"
    events = [e for e in calendar_events(google_url, calendar_id) if e["summary"] == "Ortstermin"]
    assert [e["id"] for e in events] == [made["id"]]  # adopted, not duplicated
    assert events[0]["description"] == "Baustelle"
    for name in KEPT:
        assert events[0][name] == made[name], name
    assert mails(google_url) == before
