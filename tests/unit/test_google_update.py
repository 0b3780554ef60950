"""The body of a Google update (include/calendar_engine/google_update.py): the current event with only
the mapped fields replaced. Properties over random Advoware appointments and random events a person
shaped in Google: Google then holds exactly Advoware's mapped content, and everything else the person
set is still there."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from include.calendar_engine import fingerprint, from_advoware, from_google, to_google
from include.calendar_engine.google_update import SERVER_FIELDS, onto_current
from tests.unit.test_sync_mapping import EMP, advoware_termin

ZONES = ("Europe/Berlin", "America/New_York", "Asia/Tokyo", "Europe/London")
UNMAPPED = st.fixed_dictionaries(
    {},
    optional={
        "attendees": st.just(
            [{"email": "kollege@kanzlei.example"}, {"email": "mandant@example.org", "optional": True}]
        ),
        "conferenceData": st.just(
            {
                "conferenceId": "abc-defg-hij",
                "conferenceSolution": {"key": {"type": "hangoutsMeet"}},
                "entryPoints": [{"entryPointType": "video", "uri": "https://meet.google.com/abc"}],
            }
        ),
        "attachments": st.just([{"fileUrl": "https://drive.google.com/open?id=1", "title": "Vollmacht.pdf"}]),
        "colorId": st.sampled_from(("1", "5", "11")),
        "transparency": st.sampled_from(("opaque", "transparent")),
        "status": st.sampled_from(("confirmed", "tentative")),
        "guestsCanModify": st.booleans(),
        "guestsCanInviteOthers": st.booleans(),
        "guestsCanSeeOtherGuests": st.booleans(),
        "source": st.just({"title": "Mail", "url": "https://mail.kanzlei.example/7"}),
        "eventType": st.just("default"),
    },
)
MAPPED = frozenset(
    {
        "id",
        "summary",
        "description",
        "location",
        "start",
        "end",
        "recurrence",
        "visibility",
        "reminders",
        "extendedProperties",
    }
)
STAMPS = {
    "kind": "calendar#event",
    "etag": '"17"',
    "created": "2025-01-01T10:00:00.000Z",
    "updated": "2025-01-02T10:00:00.000Z",
    "sequence": 3,
    "iCalUID": "x@google.com",
    "organizer": {"email": "kalender@group.calendar.google.com", "self": True},
    "creator": {"email": "tr@kanzlei.example"},
    "htmlLink": "https://www.google.com/calendar/event?eid=x",
    "hangoutLink": "https://meet.google.com/abc",
}


@st.composite
def current_event(draw: Any, body: dict[str, Any]) -> dict[str, Any]:
    """The event as Google holds it: an older version of the sync's body (other texts, times shown in
    some zone), what the person added, foreign properties, and the server's stamps."""
    old = draw(advoware_termin(frnr=1))
    older = to_google(from_advoware(old, EMP), employee=EMP, frnr=1)
    event = {**older, "id": body["id"], **STAMPS, **draw(UNMAPPED)}
    event["extendedProperties"] = {
        "private": {**older["extendedProperties"]["private"], "otherApp": "7"},
        "shared": {"room": "3"},
    }
    if draw(st.booleans()):  # the same instant as the body, in another zone
        zone = draw(st.sampled_from(ZONES))
        event["start"], event["end"] = dict(body["start"], timeZone=zone), dict(body["end"], timeZone=zone)
    return event


@settings(max_examples=300, deadline=None)
@given(data=st.data(), termin=advoware_termin(frnr=1), anonymize=st.booleans())
def test_google_holds_advowares_content_and_keeps_everything_else(
    data: Any, termin: dict[str, Any], anonymize: bool
) -> None:
    body = to_google(from_advoware(termin, EMP), employee=EMP, frnr=1, anonymize=anonymize)
    current = data.draw(current_event(body))
    put = onto_current(current, body)

    written, wanted = from_google(put), from_google(body)
    assert fingerprint(written) == fingerprint(wanted)  # type: ignore[arg-type]
    assert put["extendedProperties"]["private"] == {**body["extendedProperties"]["private"], "otherApp": "7"}
    assert put["extendedProperties"]["shared"] == {"room": "3"}
    for name, value in current.items():
        if name not in SERVER_FIELDS | MAPPED:
            assert put[name] == value, name  # attendees, call, files, colour, free/busy, tentative, ...
    assert not SERVER_FIELDS & set(put)


def test_the_same_instant_keeps_the_persons_time_zone_and_a_deleted_event_is_restored() -> None:
    body = {
        "id": "abcde",
        "summary": "Termin",
        "start": {"dateTime": "2026-05-04T16:00:00+02:00", "timeZone": "Europe/Berlin"},
        "end": {"dateTime": "2026-05-04T17:00:00+02:00", "timeZone": "Europe/Berlin"},
        "reminders": {"useDefault": False, "overrides": [{"method": "popup", "minutes": 15}]},
    }
    current = {
        "id": "abcde",
        "summary": "Termin",
        "status": "cancelled",
        "start": {"dateTime": "2026-05-04T10:00:00-04:00", "timeZone": "America/New_York"},
        "end": {"dateTime": "2026-05-04T11:00:00-04:00", "timeZone": "America/New_York"},
        "reminders": {
            "useDefault": False,
            "overrides": [{"method": "email", "minutes": 60}, {"method": "popup", "minutes": 15}],
        },
    }
    put = onto_current(current, body)
    assert put["start"]["timeZone"] == put["end"]["timeZone"] == "America/New_York"
    assert put["reminders"] == current["reminders"]  # the earliest reminder is the same: the list stays
    assert put["status"] == "confirmed"
    moved = onto_current(
        current, {**body, "start": {"dateTime": "2026-05-04T15:00:00+02:00", "timeZone": "Europe/Berlin"}}
    )
    assert moved["start"] == {"dateTime": "2026-05-04T15:00:00+02:00", "timeZone": "Europe/Berlin"}
    assert onto_current(None, body) == body
