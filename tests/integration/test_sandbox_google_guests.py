"""The Google sandbox around an event's guests and add-ons (sandbox/google_calendar/guests.py), through
the unchanged google-api-python-client: the mails Google would send (sendUpdates), conferenceData and
conferenceDataVersion, attachments and supportsAttachments, `source` seen by its creator only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from sandbox.keys import write_service_account_file
from tests.integration.test_sandbox_google import ANNA, BOB, creds_for, service_for, timed

EXTERNAL = "mandant@example.org"
ATTENDEES = [{"email": BOB}, {"email": EXTERNAL}]
MEET_REQUEST = {"createRequest": {"requestId": "r-4711", "conferenceSolutionKey": {"type": "hangoutsMeet"}}}
ATTACHMENT = {"fileUrl": "https://drive.google.com/open?id=abc", "title": "Schriftsatz.pdf"}


@pytest.fixture
def services(tmp_path: Path, google_url: str) -> dict[str, Any]:
    path = tmp_path / "sa.json"
    write_service_account_file(path, f"{google_url}/token")
    out = {name: service_for(google_url, creds_for(path, email)) for name, email in (("anna", ANNA), ("bob", BOB))}
    out["bob"].calendarList().list().execute()  # Bob uses Google Calendar: his account exists
    return out


def mails(google_url: str) -> dict[str, Any]:
    return httpx.get(f"{google_url}/_sandbox/mails", timeout=10).json()


def test_mails_follow_send_updates(services: dict[str, Any], google_url: str) -> None:
    anna = services["anna"]
    body = {"summary": "Besprechung", "attendees": ATTENDEES, **timed("2025-03-10", 9)}
    ev = anna.events().insert(calendarId="primary", sendUpdates="none", body=body).execute()
    plain = (
        anna.events()
        .insert(calendarId="primary", body={"summary": "ohne", "attendees": ATTENDEES, **timed("2025-03-11", 9)})
        .execute()
    )
    assert mails(google_url)["count"] == 0  # none, and no parameter at all (the default is false)

    anna.events().patch(calendarId="primary", eventId=ev["id"], sendUpdates="all", body={"summary": "Neu"}).execute()
    assert mails(google_url)["by_kind"] == {"update": 2}
    anna.events().patch(
        calendarId="primary", eventId=ev["id"], sendUpdates="externalOnly", body={"location": "Saal 3"}
    ).execute()
    last = mails(google_url)["mails"][-1]
    assert (last["kind"], last["to"]) == ("update", [EXTERNAL])  # Bob has a Google calendar
    anna.events().update(
        calendarId="primary", eventId=ev["id"], sendNotifications=True, body={**ev, "attendees": [{"email": EXTERNAL}]}
    ).execute()
    assert mails(google_url)["mails"][-1]["to"] == sorted([BOB, EXTERNAL])  # the removed guest hears too
    anna.events().delete(calendarId="primary", eventId=plain["id"], sendUpdates="all").execute()
    state = mails(google_url)
    assert state["mails"][-1]["kind"] == "cancellation" and state["count"] == 2 + 1 + 2 + 2
    anna.events().insert(
        calendarId="primary",
        sendUpdates="all",
        body={"summary": "allein", "attendees": [{"email": ANNA, "organizer": True}], **timed("2025-03-12", 9)},
    ).execute()
    assert mails(google_url)["count"] == 7  # the organizer mails no one about her own event


def test_conference_data_changes_only_with_version_1(services: dict[str, Any]) -> None:
    anna = services["anna"]
    ignored = (
        anna.events()
        .insert(calendarId="primary", body={"summary": "a", "conferenceData": MEET_REQUEST, **timed("2025-03-10", 9)})
        .execute()
    )
    assert "conferenceData" not in ignored and "hangoutLink" not in ignored

    body = {"summary": "b", "conferenceData": MEET_REQUEST, **timed("2025-03-10", 11)}
    ev = anna.events().insert(calendarId="primary", conferenceDataVersion=1, body=body).execute()
    conference = ev["conferenceData"]
    assert conference["conferenceSolution"]["key"]["type"] == "hangoutsMeet"
    assert ev["hangoutLink"] == conference["entryPoints"][0]["uri"]
    bare = {"summary": "b2", **timed("2025-03-10", 11)}
    kept = anna.events().update(calendarId="primary", eventId=ev["id"], body=bare).execute()
    assert kept["conferenceData"] == conference and kept["hangoutLink"] == ev["hangoutLink"]
    copied = (
        anna.events()
        .update(
            calendarId="primary", eventId=ev["id"], conferenceDataVersion=1, body={**bare, "conferenceData": conference}
        )
        .execute()
    )
    assert copied["conferenceData"] == conference
    removed = anna.events().update(calendarId="primary", eventId=ev["id"], conferenceDataVersion=1, body=bare).execute()
    assert "conferenceData" not in removed and "hangoutLink" not in removed


def test_attachments_change_only_with_supports_attachments(services: dict[str, Any]) -> None:
    anna = services["anna"]
    ev = (
        anna.events()
        .insert(
            calendarId="primary",
            supportsAttachments=True,
            body={"summary": "a", "attachments": [ATTACHMENT], **timed("2025-03-10", 9)},
        )
        .execute()
    )
    assert [a["title"] for a in ev["attachments"]] == ["Schriftsatz.pdf"]
    bare = {"summary": "a2", **timed("2025-03-10", 9)}
    assert (
        anna.events().update(calendarId="primary", eventId=ev["id"], body=bare).execute()["attachments"]
        == ev["attachments"]
    )
    assert (
        anna.events().patch(calendarId="primary", eventId=ev["id"], body={"attachments": []}).execute()["attachments"]
        == ev["attachments"]
    )
    gone = anna.events().update(calendarId="primary", eventId=ev["id"], supportsAttachments=True, body=bare).execute()
    assert "attachments" not in gone


def test_source_is_seen_and_kept_for_its_creator(services: dict[str, Any]) -> None:
    anna, bob = services["anna"], services["bob"]
    anna.acl().insert(
        calendarId="primary", sendNotifications=False, body={"role": "writer", "scope": {"type": "user", "value": BOB}}
    ).execute()
    source = {"title": "Schriftsatz", "url": "https://kanzlei.example/akte/1"}
    ev = (
        anna.events()
        .insert(calendarId="primary", body={"summary": "a", "source": source, **timed("2025-03-10", 9)})
        .execute()
    )
    seen_by_bob = bob.events().get(calendarId=ANNA, eventId=ev["id"]).execute()
    assert "source" not in seen_by_bob
    assert all("source" not in e for e in bob.events().list(calendarId=ANNA).execute()["items"])
    bob.events().update(calendarId=ANNA, eventId=ev["id"], body={**seen_by_bob, "summary": "b"}).execute()
    after = anna.events().get(calendarId="primary", eventId=ev["id"]).execute()
    assert (after["summary"], after["source"]) == ("b", source)
