"""The Google sandbox's sharing (sandbox/google_calendar/sharing.py), through the unchanged
google-api-python-client: single ACL rules (get, patch, delete) and a user's calendar list (get,
insert, delete), and the sharing mail of acl.insert.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from sandbox.keys import write_service_account_file
from tests.integration.test_sandbox_google import ANNA, BOB, SA_EMAIL, creds_for, expect_error, service_for, timed


@pytest.fixture
def svc(tmp_path: Path, google_url: str) -> dict[str, Any]:
    path = tmp_path / "sa.json"
    write_service_account_file(path, f"{google_url}/token")
    return {
        "sa": service_for(google_url, creds_for(path)),
        "anna": service_for(google_url, creds_for(path, ANNA)),
        "bob": service_for(google_url, creds_for(path, BOB)),
    }


def _shared(svc: dict[str, Any], *, notify: bool = False) -> str:
    cal = svc["sa"].calendars().insert(body={"summary": "Advoware – AN", "timeZone": "Europe/Berlin"}).execute()
    svc["sa"].acl().insert(
        calendarId=cal["id"],
        sendNotifications=notify,
        body={"role": "writer", "scope": {"type": "user", "value": ANNA}},
    ).execute()
    return str(cal["id"])


def listed(service: Any) -> set[str]:
    return {c["id"] for c in service.calendarList().list().execute()["items"]}


def test_acl_rule_get_patch_delete(svc: dict[str, Any], google_url: str) -> None:
    sa, anna = svc["sa"], svc["anna"]
    cid = _shared(svc)
    rule_id = f"user:{ANNA}"
    assert sa.acl().get(calendarId=cid, ruleId=rule_id).execute()["role"] == "writer"
    expect_error(lambda: anna.acl().get(calendarId=cid, ruleId=rule_id).execute(), 403, "requiredAccessLevel")

    assert (
        sa.acl()
        .patch(calendarId=cid, ruleId=rule_id, sendNotifications=False, body={"role": "reader"})
        .execute()["role"]
        == "reader"
    )
    expect_error(
        lambda: anna.events().insert(calendarId=cid, body=timed("2025-03-10", 9)).execute(), 403, "requiredAccessLevel"
    )

    sa.acl().delete(calendarId=cid, ruleId=rule_id).execute()  # the employee unshared
    expect_error(lambda: sa.acl().get(calendarId=cid, ruleId=rule_id).execute(), 404, "notFound")
    assert [r["id"] for r in sa.acl().list(calendarId=cid).execute()["items"]] == [f"user:{SA_EMAIL}"]
    expect_error(lambda: anna.events().list(calendarId=cid).execute(), 404, "notFound")
    assert cid not in listed(anna)
    expect_error(lambda: sa.acl().delete(calendarId=cid, ruleId=rule_id).execute(), 404, "notFound")
    expect_error(
        lambda: sa.acl().delete(calendarId=cid, ruleId=f"user:{SA_EMAIL}").execute(), 403, "cannotChangeOwnAcl"
    )
    assert sa.calendars().get(calendarId=cid).execute()["id"] == cid  # the calendar itself stays

    sa.acl().insert(
        calendarId=cid,
        sendNotifications=False,  # shared again: back on her list
        body={"role": "writer", "scope": {"type": "user", "value": ANNA}},
    ).execute()
    assert cid in listed(anna)
    assert httpx.get(f"{google_url}/_sandbox/mails", timeout=10).json()["count"] == 0


def test_acl_insert_mails_the_new_reader_unless_told_not_to(svc: dict[str, Any], google_url: str) -> None:
    _shared(svc, notify=True)
    state = httpx.get(f"{google_url}/_sandbox/mails", timeout=10).json()
    assert state["by_kind"] == {"calendar_shared": 1} and state["mails"][0]["to"] == [ANNA]
    _shared(svc, notify=False)
    assert httpx.get(f"{google_url}/_sandbox/mails", timeout=10).json()["count"] == 1


def test_calendar_list_get_insert_delete(svc: dict[str, Any]) -> None:
    anna, bob = svc["anna"], svc["bob"]
    cid = _shared(svc)
    assert anna.calendarList().get(calendarId=cid).execute()["accessRole"] == "writer"

    anna.calendarList().delete(calendarId=cid).execute()  # she removed it from her list
    assert cid not in listed(anna)
    expect_error(lambda: anna.calendarList().get(calendarId=cid).execute(), 404, "notFound")
    expect_error(lambda: anna.calendarList().delete(calendarId=cid).execute(), 404, "notFound")
    anna.events().insert(calendarId=cid, body=timed("2025-03-10", 9)).execute()  # her access stays

    entry = anna.calendarList().insert(body={"id": cid}).execute()
    assert (entry["id"], entry["accessRole"]) == (cid, "writer") and cid in listed(anna)
    expect_error(lambda: bob.calendarList().insert(body={"id": cid}).execute(), 404, "notFound")  # no access
    expect_error(lambda: anna.calendarList().delete(calendarId="primary").execute(), 400, "invalid")
    assert ANNA in listed(anna)
