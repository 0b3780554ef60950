"""Recurring series in the Google sandbox, driven through the unchanged google-api-python-client:
instances and their ids, exceptions (moved, changed, cancelled), the listings with and without
singleEvents, incremental sync, and what a master's change does to its exceptions under each of the
sandbox's timing models (docs/external-apis.md, "Recurring events")."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from googleapiclient.errors import HttpError
from googleapiclient.http import BatchHttpRequest

from sandbox.keys import write_service_account_file
from tests.integration.test_sandbox_google import ANNA, admin, creds_for, expect_error, service_for

# Tuesdays 09:00 Berlin from 2025-03-04, ten of them: DST starts on 2025-03-30 (08:00Z → 07:00Z).
WEEKLY = {
    "summary": "Jour fixe",
    "location": "Saal 3",
    "start": {"dateTime": "2025-03-04T09:00:00+01:00", "timeZone": "Europe/Berlin"},
    "end": {"dateTime": "2025-03-04T10:00:00+01:00", "timeZone": "Europe/Berlin"},
    "recurrence": ["RRULE:FREQ=WEEKLY;UNTIL=20250506T215959Z"],
    "extendedProperties": {"private": {"advowareFrNr": "7", "syncOrigin": "advoware"}},
}
WEEK = [
    "20250304T080000Z",
    "20250311T080000Z",
    "20250318T080000Z",
    "20250325T080000Z",
    "20250401T070000Z",
    "20250408T070000Z",
    "20250415T070000Z",
    "20250422T070000Z",
    "20250429T070000Z",
    "20250506T070000Z",
]


@pytest.fixture
def anna(google_url: str, tmp_path: Path) -> Any:
    """The calendar service impersonating Anna; her primary calendar (made on first use) in
    Europe/Berlin, so times render in Berlin."""
    admin(google_url, "/_sandbox/config", {"default_time_zone": "Europe/Berlin"})
    write_service_account_file(tmp_path / "sa.json", f"{google_url}/token")
    return service_for(google_url, creds_for(tmp_path / "sa.json", ANNA))


def insert(svc: Any, body: dict[str, Any]) -> dict[str, Any]:
    return svc.events().insert(calendarId="primary", body=body).execute()


def instances(svc: Any, master_id: str, **params: Any) -> list[dict[str, Any]]:
    items, token = [], None
    while True:
        page = svc.events().instances(calendarId="primary", eventId=master_id, pageToken=token, **params).execute()
        items.extend(page["items"])
        token = page.get("nextPageToken")
        if not token:
            return items


def listing(svc: Any, **params: Any) -> tuple[list[dict[str, Any]], str | None]:
    items, token = [], None
    while True:
        page = svc.events().list(calendarId="primary", pageToken=token, **params).execute()
        items.extend(page["items"])
        token = page.get("nextPageToken")
        if not token:
            return items, page.get("nextSyncToken")


def moved(hour: int, day: str = "2025-03-12") -> dict[str, Any]:
    return {
        "start": {"dateTime": f"{day}T{hour:02d}:00:00+01:00", "timeZone": "Europe/Berlin"},
        "end": {"dateTime": f"{day}T{hour + 1:02d}:00:00+01:00", "timeZone": "Europe/Berlin"},
    }


def test_instances_have_ids_of_their_utc_start_and_page(anna: Any) -> None:
    master = insert(anna, WEEKLY)
    found = instances(anna, master["id"], maxResults=3)
    assert [i["id"] for i in found] == [f"{master['id']}_{w}" for w in WEEK]
    first, after_dst = found[0], found[4]
    assert first["recurringEventId"] == master["id"] and "recurrence" not in first
    assert first["originalStartTime"]["timeZone"] == "Europe/Berlin"
    # the wall clock holds across DST: 09:00 in winter and in summer
    assert first["start"]["dateTime"].endswith("T09:00:00+01:00")
    assert after_dst["start"]["dateTime"] == "2025-04-01T09:00:00+02:00"
    assert first["extendedProperties"] == WEEKLY["extendedProperties"]  # the master's, inherited
    # timeMin is inclusive on the end, timeMax exclusive on the start
    window = instances(anna, master["id"], timeMin="2025-03-11T10:00:00+01:00", timeMax="2025-03-25T09:00:00+01:00")
    assert [i["id"].rsplit("_", 1)[1] for i in window] == WEEK[1:3]
    one = instances(anna, master["id"], originalStart="2025-04-08T09:00:00+02:00")
    assert [i["id"] for i in one] == [f"{master['id']}_{WEEK[5]}"]


def test_all_day_instances_are_keyed_by_date(anna: Any) -> None:
    master = insert(
        anna,
        {
            "summary": "Frist",
            "start": {"date": "2025-06-02"},
            "end": {"date": "2025-06-03"},
            "recurrence": ["RRULE:FREQ=DAILY;UNTIL=20250604"],
        },
    )
    found = instances(anna, master["id"])
    assert [i["id"] for i in found] == [f"{master['id']}_2025060{d}" for d in (2, 3, 4)]
    assert found[1]["originalStartTime"] == {"date": "2025-06-03"}
    assert found[1]["start"] == {"date": "2025-06-03"} and found[1]["end"] == {"date": "2025-06-04"}
    exception = anna.events().patch(calendarId="primary", eventId=found[1]["id"], body={"summary": "Frist!"}).execute()
    assert exception["id"] == f"{master['id']}_20250603" and exception["summary"] == "Frist!"


def test_moving_one_occurrence_makes_an_exception_and_leaves_the_master(anna: Any) -> None:
    master = insert(anna, WEEKLY)
    iid = f"{master['id']}_{WEEK[1]}"
    exception = anna.events().patch(calendarId="primary", eventId=iid, body=moved(14)).execute()
    assert exception["id"] == iid and exception["recurringEventId"] == master["id"]
    assert exception["originalStartTime"]["dateTime"] == "2025-03-11T09:00:00+01:00"
    assert exception["start"]["dateTime"] == "2025-03-12T14:00:00+01:00"
    assert exception["summary"] == "Jour fixe" and exception["extendedProperties"] == WEEKLY["extendedProperties"]
    again = anna.events().get(calendarId="primary", eventId=master["id"]).execute()
    assert (again["etag"], again["updated"], again["recurrence"]) == (
        master["etag"],
        master["updated"],
        master["recurrence"],
    )
    # singleEvents=false: the master and the exception as two items
    items, _ = listing(anna, singleEvents=False)
    assert sorted(i["id"] for i in items) == sorted([master["id"], iid])
    # singleEvents=true: ten instances, the moved one in its new place, no master
    expanded, _ = listing(anna, singleEvents=True, orderBy="startTime", maxResults=4)
    assert len(expanded) == 10 and master["id"] not in {i["id"] for i in expanded}
    assert [i["id"] for i in expanded][1] == iid and expanded[1]["start"]["dateTime"].startswith("2025-03-12T14")
    assert anna.events().get(calendarId="primary", eventId=iid).execute()["start"] == exception["start"]


def test_update_of_an_instance_replaces_what_it_does_not_send(anna: Any) -> None:
    master = insert(anna, WEEKLY)
    iid = f"{master['id']}_{WEEK[2]}"
    current = anna.events().get(calendarId="primary", eventId=iid).execute()
    body = {k: v for k, v in current.items() if k not in ("extendedProperties", "location")}
    body["summary"] = "Jour fixe (verlegt)"
    put = anna.events().update(calendarId="primary", eventId=iid, body=body).execute()
    assert put["recurringEventId"] == master["id"] and put["originalStartTime"] == current["originalStartTime"]
    assert "extendedProperties" not in put and "location" not in put  # PUT semantics, as for any event


def test_deleting_one_occurrence_makes_a_cancelled_exception(anna: Any) -> None:
    master = insert(anna, WEEKLY)
    iid = f"{master['id']}_{WEEK[3]}"
    anna.events().delete(calendarId="primary", eventId=iid).execute()
    gone = anna.events().get(calendarId="primary", eventId=iid).execute()
    assert gone["status"] == "cancelled" and gone["recurringEventId"] == master["id"]
    assert anna.events().get(calendarId="primary", eventId=master["id"]).execute()["status"] == "confirmed"
    # listed without showDeleted when singleEvents is false (Google's reference), as a tombstone
    items, _ = listing(anna)
    (tomb,) = [i for i in items if i["id"] == iid]
    assert tomb["status"] == "cancelled" and tomb["recurringEventId"] == master["id"]
    assert tomb["originalStartTime"]["dateTime"] == "2025-03-25T09:00:00+01:00"
    assert iid not in {i["id"] for i in listing(anna, singleEvents=True)[0]}
    assert iid in {i["id"] for i in listing(anna, singleEvents=True, showDeleted=True)[0]}
    assert iid not in {i["id"] for i in instances(anna, master["id"])}
    assert iid in {i["id"] for i in instances(anna, master["id"], showDeleted=True)}
    expect_error(lambda: anna.events().delete(calendarId="primary", eventId=iid).execute(), 410, "deleted")
    restored = anna.events().patch(calendarId="primary", eventId=iid, body={"status": "confirmed"}).execute()
    assert restored["status"] == "confirmed" and iid in {i["id"] for i in instances(anna, master["id"])}


def test_unknown_and_excluded_instances_are_404(anna: Any) -> None:
    exdate = "EXDATE;TZID=Europe/Berlin:20250318T090000"
    master = insert(anna, {**WEEKLY, "recurrence": [*WEEKLY["recurrence"], exdate]})
    assert f"{master['id']}_{WEEK[2]}" not in {i["id"] for i in instances(anna, master["id"])}
    for suffix in (WEEK[2], "20250305T080000Z", "20250304"):  # excluded, no occurrence, wrong form
        expect_error(
            lambda s=suffix: anna.events().get(calendarId="primary", eventId=f"{master['id']}_{s}").execute(),
            404,
            "notFound",
        )
    expect_error(
        lambda: (
            anna.events()
            .patch(calendarId="primary", eventId=f"{master['id']}_{WEEK[2]}", body={"summary": "x"})
            .execute()
        ),
        404,
        "notFound",
    )
    single = insert(anna, {"summary": "einmal", **moved(8)})
    assert instances(anna, single["id"]) == []  # a single event has no instances (assumed)


def test_incremental_sync_returns_changed_exceptions(anna: Any) -> None:
    master = insert(anna, WEEKLY)
    _, token = listing(anna, showDeleted=True)
    anna.events().patch(calendarId="primary", eventId=f"{master['id']}_{WEEK[1]}", body=moved(15)).execute()
    anna.events().delete(calendarId="primary", eventId=f"{master['id']}_{WEEK[4]}").execute()
    changed, token = listing(anna, syncToken=token, showDeleted=True)
    by_id = {i["id"]: i for i in changed}
    assert set(by_id) == {f"{master['id']}_{WEEK[1]}", f"{master['id']}_{WEEK[4]}"}  # not the master
    tomb = by_id[f"{master['id']}_{WEEK[4]}"]
    assert (tomb["status"], tomb["recurringEventId"]) == ("cancelled", master["id"])
    assert tomb["originalStartTime"]["dateTime"] == "2025-04-01T09:00:00+02:00"
    assert listing(anna, syncToken=token, showDeleted=True)[0] == []


def test_a_master_edit_reaches_the_fields_an_exception_did_not_change(anna: Any) -> None:
    master = insert(anna, WEEKLY)
    own = f"{master['id']}_{WEEK[1]}"
    anna.events().patch(calendarId="primary", eventId=own, body={"location": "Kanzlei", **moved(14)}).execute()
    _, token = listing(anna, showDeleted=True)
    anna.events().patch(
        calendarId="primary", eventId=master["id"], body={"summary": "Jour fixe neu", "location": "Saal 4"}
    ).execute()
    exception = anna.events().get(calendarId="primary", eventId=own).execute()
    assert exception["summary"] == "Jour fixe neu"  # it held the old title: follows
    assert exception["location"] == "Kanzlei"  # its own value stays
    assert exception["start"]["dateTime"] == "2025-03-12T14:00:00+01:00"  # a field edit moves nothing
    changed = {i["id"] for i in listing(anna, syncToken=token, showDeleted=True)[0]}
    assert changed == {master["id"], own}


def _two_exceptions(svc: Any) -> tuple[dict[str, Any], str, str]:
    master = insert(svc, WEEKLY)
    early, late = f"{master['id']}_{WEEK[1]}", f"{master['id']}_{WEEK[7]}"
    svc.events().patch(calendarId="primary", eventId=early, body=moved(14)).execute()
    svc.events().patch(calendarId="primary", eventId=late, body={"summary": "Jour fixe spät"}).execute()
    return master, early, late


@pytest.mark.parametrize(("model", "stays"), [("anchor", {"early"}), ("keep", {"early", "late"}), ("reset", set())])
def test_shortening_the_series_under_each_timing_model(anna: Any, google_url: str, model: str, stays: set[str]) -> None:
    admin(google_url, "/_sandbox/config", {"series_timing_model": model})
    master, early, late = _two_exceptions(anna)
    _, token = listing(anna, showDeleted=True)
    anna.events().patch(
        calendarId="primary", eventId=master["id"], body={"recurrence": ["RRULE:FREQ=WEEKLY;UNTIL=20250325T225959Z"]}
    ).execute()  # 4 weeks
    names = {early: "early", late: "late"}
    plain = {names[i["id"]] for i in listing(anna)[0] if i["id"] in names}
    assert plain == stays
    changed = {i["id"]: i for i in listing(anna, syncToken=token, showDeleted=True)[0]}
    removed = {names[i] for i, e in changed.items() if i in names and e["status"] == "cancelled"}
    assert removed == {"early", "late"} - stays  # a removed exception reaches incremental sync as cancelled
    full = {names[i["id"]]: i["status"] for i in listing(anna, showDeleted=True)[0] if i["id"] in names}
    assert {n for n, s in full.items() if s == "cancelled"} == {"early", "late"} - stays
    # what the series shows now: 4 occurrences (the early one moved where it still stands), and
    # under "keep" the orphan beside them
    shown = instances(anna, master["id"])
    assert len(shown) == 4 + ("late" in stays)
    assert (shown[1]["start"]["dateTime"].startswith("2025-03-12T14")) == ("early" in stays)


def test_a_time_of_day_change_drops_every_exception_under_anchor(anna: Any) -> None:
    master, early, late = _two_exceptions(anna)
    body = {
        "start": {"dateTime": "2025-03-04T10:00:00+01:00", "timeZone": "Europe/Berlin"},
        "end": {"dateTime": "2025-03-04T11:00:00+01:00", "timeZone": "Europe/Berlin"},
    }
    anna.events().patch(calendarId="primary", eventId=master["id"], body=body).execute()
    assert {i["id"] for i in listing(anna)[0]} == {master["id"]}  # no original start is an occurrence now
    assert anna.events().get(calendarId="primary", eventId=late).execute()["status"] == "cancelled"


def test_an_unmoved_exception_follows_a_new_duration(anna: Any) -> None:
    master, early, late = _two_exceptions(anna)
    anna.events().patch(
        calendarId="primary",
        eventId=master["id"],
        body={"end": {"dateTime": "2025-03-04T10:30:00+01:00", "timeZone": "Europe/Berlin"}},
    ).execute()
    late_now = anna.events().get(calendarId="primary", eventId=late).execute()
    assert late_now["summary"] == "Jour fixe spät" and late_now["end"]["dateTime"] == "2025-04-22T10:30:00+02:00"
    early_now = anna.events().get(calendarId="primary", eventId=early).execute()
    assert early_now["end"]["dateTime"] == "2025-03-12T15:00:00+01:00"  # moved by a person: stays


def test_deleting_the_master_deletes_the_series(anna: Any) -> None:
    master, early, late = _two_exceptions(anna)
    _, token = listing(anna, showDeleted=True)
    anna.events().delete(calendarId="primary", eventId=master["id"]).execute()
    assert listing(anna)[0] == []
    changed = {i["id"]: i["status"] for i in listing(anna, syncToken=token, showDeleted=True)[0]}
    assert changed == {master["id"]: "cancelled", early: "cancelled", late: "cancelled"}
    expect_error(lambda: anna.events().instances(calendarId="primary", eventId=master["id"]).execute(), 410, "deleted")
    expect_error(
        lambda: (
            anna.events()
            .patch(calendarId="primary", eventId=f"{master['id']}_{WEEK[3]}", body={"summary": "x"})
            .execute()
        ),
        404,
        "notFound",
    )


def test_single_events_listing_orders_by_start_and_pages(anna: Any) -> None:
    a = insert(anna, WEEKLY)
    b = insert(
        anna,
        {
            "summary": "täglich",
            "start": {"date": "2025-03-05"},
            "end": {"date": "2025-03-06"},
            "recurrence": ["RRULE:FREQ=DAILY;UNTIL=20250307"],
        },
    )
    c = insert(anna, {"summary": "einmal", **moved(16, "2025-03-05")})
    found, token = listing(
        anna,
        singleEvents=True,
        orderBy="startTime",
        maxResults=2,
        timeMin="2025-03-01T00:00:00Z",
        timeMax="2025-03-12T00:00:00Z",
    )
    assert [i.get("recurringEventId", i["id"]) for i in found] == [a["id"], b["id"], c["id"], b["id"], b["id"], a["id"]]
    assert token  # a full listing ends with a sync token, as with singleEvents=false
    expect_error(lambda: anna.events().list(calendarId="primary", orderBy="startTime").execute(), 400, "badRequest")


def test_timing_model_is_configurable_and_reset_restores_anchor(google_url: str) -> None:
    assert admin(google_url, "/_sandbox/config")["series_timing_model"] == "anchor"
    assert admin(google_url, "/_sandbox/config", {"series_timing_model": "keep"})["series_timing_model"] == "keep"
    bad = httpx.post(f"{google_url}/_sandbox/config", json={"series_timing_model": "sometimes"}, timeout=10)
    assert bad.status_code == 400
    admin(google_url, "/_sandbox/reset")
    assert admin(google_url, "/_sandbox/config")["series_timing_model"] == "anchor"


def test_batch_parts_reach_instances_too(anna: Any, google_url: str) -> None:
    master = insert(anna, WEEKLY)
    results: dict[str, Any] = {}
    batch = BatchHttpRequest(batch_uri=f"{google_url}/batch/calendar/v3")
    for n in (1, 2):
        batch.add(
            anna.events().delete(calendarId="primary", eventId=f"{master['id']}_{WEEK[n]}"),
            callback=lambda rid, resp, exc: results.__setitem__(rid, exc),
            request_id=str(n),
        )
    batch.execute()
    assert results == {"1": None, "2": None}
    assert len(instances(anna, master["id"])) == 8
    with pytest.raises(HttpError):
        anna.events().delete(calendarId="primary", eventId=f"{master['id']}_{WEEK[1]}").execute()
