"""The Google Calendar sandbox, driven through the unchanged google-api-python-client and google-auth.

Raw HTTP is used only where the point is the wire (error bodies on unknown tokens, parameters the
client library refuses to send).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from google.auth.exceptions import RefreshError
from google.oauth2 import service_account
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError
from googleapiclient.http import BatchHttpRequest

from sandbox.keys import service_account_info, write_service_account_file

SCOPES = ["https://www.googleapis.com/auth/calendar"]
SA_EMAIL = "sync@kanzlei-sandbox.iam.gserviceaccount.com"
ANNA = "anna@kanzlei.example"
BOB = "bob@kanzlei.example"


# -- helpers -------------------------------------------------------------------------------------
@pytest.fixture
def key_path(tmp_path: Path, google_url: str) -> Path:
    path = tmp_path / "sa.json"
    write_service_account_file(path, f"{google_url}/token")
    return path


def creds_for(key_path: Path, subject: str | None = None) -> service_account.Credentials:
    creds = service_account.Credentials.from_service_account_file(str(key_path), scopes=SCOPES)
    return creds.with_subject(subject) if subject else creds


def service_for(google_url: str, creds: Any) -> Any:
    return build(
        "calendar",
        "v3",
        credentials=creds,
        cache_discovery=False,
        static_discovery=True,
        client_options={"api_endpoint": f"{google_url}/calendar/v3/"},
    )


@pytest.fixture
def anna(google_url: str, key_path: Path) -> Any:
    """The calendar service impersonating Anna (domain-wide delegation)."""
    return service_for(google_url, creds_for(key_path, ANNA))


def error_of(exc: HttpError) -> dict[str, Any]:
    return json.loads(exc.content)["error"]


def reason_of(exc: HttpError) -> str:
    return error_of(exc)["errors"][0]["reason"]


def expect_error(call: Callable[[], Any], status: int, reason: str) -> dict[str, Any]:
    with pytest.raises(HttpError) as info:
        call()
    assert info.value.status_code == status, info.value.content
    assert reason_of(info.value) == reason, info.value.content
    return error_of(info.value)


def timed(day: str, hour: int, hours: int = 1) -> dict[str, Any]:
    return {
        "start": {"dateTime": f"{day}T{hour:02d}:00:00+01:00", "timeZone": "Europe/Berlin"},
        "end": {"dateTime": f"{day}T{hour + hours:02d}:00:00+01:00", "timeZone": "Europe/Berlin"},
    }


def list_all(svc: Any, **params: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every page of events.list; returns (items, raw pages)."""
    pages, token = [], None
    while True:
        page = svc.events().list(calendarId="primary", pageToken=token, **params).execute()
        pages.append(page)
        token = page.get("nextPageToken")
        if not token:
            return [item for p in pages for item in p["items"]], pages


def admin(google_url: str, path: str, body: Any = None) -> Any:
    if body is None and path in ("/_sandbox/state", "/_sandbox/stats", "/_sandbox/config"):
        resp = httpx.get(google_url + path, timeout=10)
    else:
        resp = httpx.post(google_url + path, json=body or {}, timeout=10)
    resp.raise_for_status()
    return resp.json()


# -- auth ----------------------------------------------------------------------------------------
def test_delegated_token_makes_the_subject_the_principal(google_url: str, key_path: Path) -> None:
    creds = creds_for(key_path, ANNA)
    svc = service_for(google_url, creds)
    cal = svc.calendars().insert(body={"summary": "Anna (Advoware)", "timeZone": "Europe/Berlin"}).execute()

    assert creds.token and creds.valid  # a real JWT-bearer grant against /token happened
    state = admin(google_url, "/_sandbox/state")
    assert {c["id"]: c["owner"] for c in state["calendars"]}[cal["id"]] == ANNA
    stats = admin(google_url, "/_sandbox/stats")
    assert stats["requests"] == {"token": 1, "calendars.insert": 1}
    assert stats["by_principal"][ANNA] == {"requests": 2, "writes": 1}

    admin(google_url, "/_sandbox/expire_tokens")  # the client refreshes on 401 by itself
    assert svc.calendars().get(calendarId=cal["id"]).execute()["id"] == cal["id"]
    assert admin(google_url, "/_sandbox/stats")["requests"]["token"] == 2

    sa_svc = service_for(google_url, creds_for(key_path))  # no subject: the service account itself
    own = sa_svc.calendarList().list().execute()["items"]
    assert [c["id"] for c in own if c.get("primary")] == [SA_EMAIL]
    assert cal["id"] not in {c["id"] for c in own}


def test_read_only_scope_cannot_write(google_url: str, key_path: Path) -> None:
    creds = service_account.Credentials.from_service_account_file(
        str(key_path), scopes=["https://www.googleapis.com/auth/calendar.readonly"]
    ).with_subject(ANNA)
    svc = service_for(google_url, creds)
    assert svc.events().list(calendarId="primary").execute()["items"] == []
    expect_error(
        lambda: svc.events().insert(calendarId="primary", body=timed("2025-03-10", 9)).execute(),
        403,
        "insufficientPermissions",
    )


def test_keys_cli_writes_a_loadable_key(tmp_path: Path, google_url: str) -> None:
    path = tmp_path / "cli.json"
    subprocess.run(
        [sys.executable, "-m", "sandbox.keys", str(path), f"{google_url}/token"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    info = json.loads(path.read_text())
    assert info["type"] == "service_account" and info["token_uri"] == f"{google_url}/token"
    assert path.stat().st_mode & 0o077 == 0
    svc = service_for(google_url, creds_for(path, BOB))
    assert svc.calendars().get(calendarId="primary").execute()["id"] == BOB


def test_forged_signature_and_unknown_token_are_rejected(tmp_path: Path, google_url: str, key_path: Path) -> None:
    real = json.loads(key_path.read_text())
    forged = service_account_info(real["token_uri"], real["client_email"])
    forged["private_key_id"] = real["private_key_id"]  # the real key id, signed with another key
    forged_path = tmp_path / "forged.json"
    forged_path.write_text(json.dumps(forged))
    with pytest.raises(RefreshError, match="invalid_grant"):
        service_for(google_url, creds_for(forged_path, ANNA)).calendars().get(calendarId="primary").execute()

    resp = httpx.get(
        f"{google_url}/calendar/v3/users/me/calendarList",
        headers={"Authorization": "Bearer ya29.not-issued"},
        timeout=10,
    )
    assert resp.status_code == 401
    assert resp.json() == {
        "error": {
            "errors": [
                {
                    "domain": "global",
                    "reason": "authError",
                    "message": "Invalid Credentials",
                    "locationType": "header",
                    "location": "Authorization",
                }
            ],
            "code": 401,
            "message": "Invalid Credentials",
        }
    }


# -- events: ids, duplicates, deletes, etags -----------------------------------------------------
def test_deterministic_ids_duplicates_and_deletes(anna: Any) -> None:
    ev = (
        anna.events()
        .insert(calendarId="primary", body={"id": "adv00042", "summary": "Termin", **timed("2025-03-10", 9)})
        .execute()
    )
    assert ev["id"] == "adv00042" and ev["iCalUID"] == "adv00042@google.com" and ev["status"] == "confirmed"
    body = expect_error(
        lambda: anna.events().insert(calendarId="primary", body={"id": "adv00042", **timed("2025-03-10", 9)}).execute(),
        409,
        "duplicate",
    )
    assert body == {
        "errors": [{"domain": "global", "reason": "duplicate", "message": "The requested identifier already exists."}],
        "code": 409,
        "message": "The requested identifier already exists.",
    }

    assert anna.events().delete(calendarId="primary", eventId="adv00042").execute() == ""
    expect_error(lambda: anna.events().delete(calendarId="primary", eventId="adv00042").execute(), 410, "deleted")
    expect_error(
        lambda: (
            anna.events()
            .insert(  # a deleted id is never free again
                calendarId="primary", body={"id": "adv00042", **timed("2025-03-10", 9)}
            )
            .execute()
        ),
        409,
        "duplicate",
    )
    cancelled = anna.events().get(calendarId="primary", eventId="adv00042").execute()
    assert cancelled["status"] == "cancelled" and cancelled["summary"] == "Termin"
    expect_error(lambda: anna.events().delete(calendarId="primary", eventId="nosuchid").execute(), 404, "notFound")

    for bad in ("123e4567-e89b-12d3-a456-426614174000", "ADV00042", "abcd", "wxyz0123"):
        err = expect_error(
            lambda bad=bad: (
                anna.events().insert(calendarId="primary", body={"id": bad, **timed("2025-03-10", 9)}).execute()
            ),
            400,
            "invalid",
        )
        assert err["message"] == "Invalid resource id value."
    generated = anna.events().insert(calendarId="primary", body=timed("2025-03-11", 9)).execute()
    assert len(generated["id"]) >= 5 and set(generated["id"]) <= set("0123456789abcdefghijklmnopqrstuv")


def test_if_match_with_a_stale_etag_is_412(anna: Any) -> None:
    ev = (
        anna.events()
        .insert(calendarId="primary", body={"id": "etag0001", "summary": "v1", **timed("2025-03-10", 9)})
        .execute()
    )
    req = anna.events().patch(calendarId="primary", eventId="etag0001", body={"summary": "v2"})
    req.headers["If-Match"] = ev["etag"]
    v2 = req.execute()
    assert v2["summary"] == "v2" and v2["etag"] != ev["etag"] and v2["updated"] >= ev["updated"]

    for req in (
        anna.events().patch(calendarId="primary", eventId="etag0001", body={"summary": "v3"}),
        anna.events().update(
            calendarId="primary", eventId="etag0001", body={"summary": "v3", **timed("2025-03-10", 9)}
        ),
        anna.events().delete(calendarId="primary", eventId="etag0001"),
    ):
        req.headers["If-Match"] = ev["etag"]
        err = expect_error(req.execute, 412, "conditionNotMet")
        assert err["errors"][0]["location"] == "If-Match"
    assert anna.events().get(calendarId="primary", eventId="etag0001").execute()["summary"] == "v2"


def test_patch_merges_private_properties_and_update_replaces(anna: Any) -> None:
    anna.events().insert(
        calendarId="primary",
        body={
            "id": "merge0001",
            "summary": "x",
            "location": "Raum 1",
            **timed("2025-03-10", 9),
            "extendedProperties": {"private": {"advowareId": "42", "rev": "1", "old": "y"}},
        },
    ).execute()
    patched = (
        anna.events()
        .patch(
            calendarId="primary",
            eventId="merge0001",
            body={"extendedProperties": {"private": {"rev": "2", "old": None, "new": "z"}}},
        )
        .execute()
    )
    assert patched["extendedProperties"]["private"] == {"advowareId": "42", "rev": "2", "new": "z"}
    assert patched["location"] == "Raum 1" and patched["sequence"] == 0

    moved = anna.events().patch(calendarId="primary", eventId="merge0001", body=timed("2025-03-10", 11)).execute()
    assert moved["sequence"] == 1  # a time change is a significant revision

    replaced = (
        anna.events()
        .update(calendarId="primary", eventId="merge0001", body={"summary": "only", **timed("2025-03-10", 9)})
        .execute()
    )
    assert "extendedProperties" not in replaced and "location" not in replaced
    assert replaced["summary"] == "only"

    long_key, ok_key = "k" * 45, "k" * 44
    limited = (
        anna.events()
        .patch(
            calendarId="primary",
            eventId="merge0001",
            body={"extendedProperties": {"private": {long_key: "dropped", ok_key: "v" * 1100}}},
        )
        .execute()
    )
    assert limited["extendedProperties"]["private"] == {ok_key: "v" * 1024}

    anna.events().delete(calendarId="primary", eventId="merge0001").execute()
    undeleted = anna.events().patch(calendarId="primary", eventId="merge0001", body={"status": "confirmed"}).execute()
    assert undeleted["status"] == "confirmed"
    assert anna.events().get(calendarId="primary", eventId="merge0001").execute()["status"] == "confirmed"


def test_start_end_validation(anna: Any) -> None:
    def insert(body: dict[str, Any]) -> Callable[[], Any]:
        return lambda: anna.events().insert(calendarId="primary", body=body).execute()

    mixed = {"start": {"date": "2025-03-10"}, "end": {"dateTime": "2025-03-10T10:00:00Z"}}
    assert "both be date" in expect_error(insert(mixed), 400, "invalid")["message"]
    naive = {"start": {"dateTime": "2025-03-10T09:00:00"}, "end": {"dateTime": "2025-03-10T10:00:00"}}
    assert expect_error(insert(naive), 400, "required")["message"] == "Missing time zone definition for start time."
    series = {
        "start": {"dateTime": "2025-03-10T09:00:00+01:00"},
        "end": {"dateTime": "2025-03-10T10:00:00+01:00"},
        "recurrence": ["RRULE:FREQ=WEEKLY;COUNT=3"],
    }
    expect_error(insert(series), 400, "required")
    expect_error(insert({"start": {"date": "2025-03-10"}}), 400, "required")
    backwards = {"start": {"dateTime": "2025-03-10T10:00:00Z"}, "end": {"dateTime": "2025-03-10T09:00:00Z"}}
    expect_error(insert(backwards), 400, "timeRangeEmpty")
    ok = (
        anna.events()
        .insert(
            calendarId="primary",
            body={
                "start": {"dateTime": "2025-03-10T09:00:00", "timeZone": "Europe/Berlin"},
                "end": {"dateTime": "2025-03-10T10:00:00", "timeZone": "Europe/Berlin"},
                "recurrence": ["RRULE:FREQ=WEEKLY;UNTIL=20250401T000000Z"],
            },
        )
        .execute()
    )
    assert ok["recurrence"] == ["RRULE:FREQ=WEEKLY;UNTIL=20250401T000000Z"]


def test_send_updates_is_validated_on_the_wire(google_url: str) -> None:
    body = {"start": {"date": "2025-03-10"}, "end": {"date": "2025-03-11"}}
    url = f"{google_url}/calendar/v3/calendars/primary/events"
    bad = httpx.post(url, params={"sendUpdates": "false"}, json=body, timeout=10)
    assert bad.status_code == 400 and bad.json()["error"]["errors"][0]["location"] == "sendUpdates"
    assert httpx.post(url, params={"sendUpdates": "none"}, json=body, timeout=10).status_code == 200


# -- listing, paging, sync tokens ----------------------------------------------------------------
def test_paging_and_incremental_sync(anna: Any, google_url: str) -> None:
    for i in range(5):
        anna.events().insert(
            calendarId="primary", body={"id": f"chg{i:04d}", "summary": f"t{i}", **timed("2025-03-10", 8 + i)}
        ).execute()
    items, pages = list_all(anna, maxResults=2)
    assert [len(p["items"]) for p in pages] == [2, 2, 1]
    assert all("nextSyncToken" not in p and "nextPageToken" in p for p in pages[:-1])
    assert "nextSyncToken" in pages[-1] and "nextPageToken" not in pages[-1]
    assert sorted(e["id"] for e in items) == [f"chg{i:04d}" for i in range(5)]
    token = pages[-1]["nextSyncToken"]

    anna.events().patch(calendarId="primary", eventId="chg0001", body={"summary": "changed"}).execute()
    anna.events().delete(calendarId="primary", eventId="chg0002").execute()
    anna.events().insert(calendarId="primary", body={"id": "chg0009", **timed("2025-03-11", 8)}).execute()

    changes, pages = list_all(anna, syncToken=token, maxResults=2)
    assert {e["id"]: e["status"] for e in changes} == {
        "chg0001": "confirmed",
        "chg0002": "cancelled",
        "chg0009": "confirmed",
    }
    assert "nextSyncToken" in pages[-1] and all("nextSyncToken" not in p for p in pages[:-1])
    assert next(e for e in changes if e["id"] == "chg0001")["summary"] == "changed"
    tombstone = next(e for e in changes if e["id"] == "chg0002")
    assert set(tombstone) == {"kind", "etag", "id", "status"}  # only the id is guaranteed
    again, pages = list_all(anna, syncToken=pages[-1]["nextSyncToken"])
    assert again == [] and pages[-1]["nextSyncToken"]

    # A full listing hides the tombstone unless showDeleted.
    assert "chg0002" not in {e["id"] for e in list_all(anna)[0]}
    assert "chg0002" in {e["id"] for e in list_all(anna, showDeleted=True)[0]}

    for forbidden in (
        {"timeMin": "2025-01-01T00:00:00Z"},
        {"privateExtendedProperty": "a=b"},
        {"showDeleted": False},
        {"orderBy": "updated"},
        {"q": "x"},
    ):
        err = expect_error(
            lambda f=forbidden: anna.events().list(calendarId="primary", syncToken=token, **f).execute(),
            400,
            "syncTokenWithRequestRestrictions",
        )
        assert err["code"] == 400

    admin(google_url, "/_sandbox/invalidate_sync_tokens")
    err = expect_error(
        lambda: anna.events().list(calendarId="primary", syncToken=token).execute(), 410, "fullSyncRequired"
    )
    assert err["errors"][0]["domain"] == "calendar"
    expect_error(
        lambda: anna.events().list(calendarId="primary", syncToken="garbage").execute(),
        410,
        "fullSyncRequired",
    )


def test_time_window_and_property_filter(anna: Any) -> None:
    anna.events().insert(
        calendarId="primary",
        body={
            "id": "tm00001",
            **timed("2025-03-10", 9),
            "extendedProperties": {"private": {"advowareId": "1"}},
        },
    ).execute()
    anna.events().insert(
        calendarId="primary",
        body={
            "id": "tm00002",
            **timed("2025-03-10", 12),
            "extendedProperties": {"private": {"advowareId": "2"}},
        },
    ).execute()
    anna.events().insert(
        calendarId="primary",
        body={"id": "tm00003", "start": {"date": "2025-03-12"}, "end": {"date": "2025-03-13"}},
    ).execute()
    anna.events().insert(
        calendarId="primary",
        body={
            "id": "tm00004",
            "recurrence": ["RRULE:FREQ=WEEKLY"],
            "start": {"dateTime": "2025-01-06T09:00:00", "timeZone": "Europe/Berlin"},
            "end": {"dateTime": "2025-01-06T10:00:00", "timeZone": "Europe/Berlin"},
        },
    ).execute()

    def ids(**params: Any) -> set[str]:
        return {e["id"] for e in list_all(anna, **params)[0]}

    # win00001 ends 10:00+01:00 = 09:00Z: timeMin is exclusive on the END.
    assert "tm00001" not in ids(timeMin="2025-03-10T09:00:00Z", timeMax="2025-03-10T23:00:00Z")
    assert "tm00001" in ids(timeMin="2025-03-10T08:59:00Z", timeMax="2025-03-10T23:00:00Z")
    # win00002 starts 12:00+01:00 = 11:00Z: timeMax is exclusive on the START.
    assert "tm00002" not in ids(timeMin="2025-03-10T00:00:00Z", timeMax="2025-03-10T11:00:00Z")
    assert ids(timeMin="2025-03-12T00:00:00+01:00", timeMax="2025-03-12T23:00:00+01:00") == {"tm00003"}
    # The endless weekly series has an occurrence on Monday 2026-06-01.
    assert ids(timeMin="2026-06-01T06:00:00Z", timeMax="2026-06-01T12:00:00Z") == {"tm00004"}
    assert ids(timeMin="2026-06-02T06:00:00Z", timeMax="2026-06-02T12:00:00Z") == set()
    assert ids(privateExtendedProperty="advowareId=2") == {"tm00002"}
    expect_error(
        lambda: anna.events().list(calendarId="primary", timeMin="2025-03-10T00:00:00").execute(),
        400,
        "badRequest",
    )


# -- quota, faults, batch ------------------------------------------------------------------------
@pytest.mark.parametrize("status", [403, 429])
def test_quota_answers_rate_limit_and_recovers(anna: Any, google_url: str, status: int) -> None:
    admin(google_url, "/_sandbox/config", {"quota_requests": 5, "quota_window_s": 2, "quota_status": status})
    for _ in range(5):
        anna.calendarList().list().execute()
    with pytest.raises(HttpError) as info:
        anna.calendarList().list().execute()
    assert info.value.status_code == status
    assert json.loads(info.value.content) == {
        "error": {
            "errors": [{"domain": "usageLimits", "reason": "rateLimitExceeded", "message": "Rate Limit Exceeded"}],
            "code": status,
            "message": "Rate Limit Exceeded",
        }
    }
    stats = admin(google_url, "/_sandbox/stats")
    assert stats["requests"]["calendarList.list"] == 6  # the refused request is counted too
    assert stats["by_principal"][ANNA]["requests"] == 6 + stats["requests"]["token"]

    deadline = time.monotonic() + 10  # the sliding window lets the user through again
    while True:
        try:
            anna.calendarList().list().execute()
            break
        except HttpError as exc:
            assert exc.status_code == status and time.monotonic() < deadline
            time.sleep(0.2)


def test_quota_is_per_user(google_url: str, key_path: Path) -> None:
    admin(google_url, "/_sandbox/config", {"quota_requests": 2, "quota_window_s": 30})
    a, b = (service_for(google_url, creds_for(key_path, who)) for who in (ANNA, BOB))
    a.calendarList().list().execute()
    a.calendarList().list().execute()
    expect_error(lambda: a.calendarList().list().execute(), 403, "rateLimitExceeded")
    assert b.calendarList().list().execute()["items"][0]["id"] == BOB


def test_the_project_quota_holds_every_user_together(google_url: str, key_path: Path) -> None:
    """Google's second quota: the project's requests per minute, whoever sends them."""
    admin(
        google_url,
        "/_sandbox/config",
        {"quota_requests": 2, "quota_window_s": 30, "project_quota_requests": 3, "quota_status": 429},
    )
    a, b = (service_for(google_url, creds_for(key_path, who)) for who in (ANNA, BOB))
    a.calendarList().list().execute()
    a.calendarList().list().execute()
    b.calendarList().list().execute()
    expect_error(lambda: b.calendarList().list().execute(), 429, "rateLimitExceeded")  # Bob's own window has room
    expect_error(lambda: a.calendarList().list().execute(), 429, "rateLimitExceeded")  # Anna's has not
    quota = httpx.get(f"{google_url}/_sandbox/quota", timeout=10).json()
    assert quota["refused"] == {"user": 1, "project": 1} and quota["project_peak"] == 3
    assert quota["project_limit"] == 3 and quota["window_s"] == 30


def test_injected_faults_use_googles_shape(anna: Any, google_url: str) -> None:
    admin(
        google_url,
        "/_sandbox/faults",
        {
            "faults": [
                {
                    "match": "events.insert",
                    "kind": "status",
                    "status": 403,
                    "reason": "quotaExceeded",
                    "count": 1,
                },
                {"match": "events.list", "kind": "status", "status": 503, "count": 2},
            ]
        },
    )
    err = expect_error(
        lambda: anna.events().insert(calendarId="primary", body=timed("2025-03-10", 9)).execute(),
        403,
        "quotaExceeded",
    )
    assert err["errors"][0] == {
        "domain": "usageLimits",
        "reason": "quotaExceeded",
        "message": "Calendar usage limits exceeded.",
    }
    anna.events().insert(calendarId="primary", body=timed("2025-03-10", 9)).execute()

    req = anna.events().list(calendarId="primary")
    req._sleep = lambda _s: None  # the client's documented test hook: retry without waiting
    assert len(req.execute(num_retries=3)["items"]) == 1  # two 503 backendError, then the answer
    stats = admin(google_url, "/_sandbox/stats")
    assert stats["faults"] == {"events.insert": 1, "events.list": 2}
    assert stats["requests"]["events.list"] == 3 and stats["writes"]["events.insert"] == 1

    admin(
        google_url,
        "/_sandbox/faults",
        {"faults": [{"match": "events.list", "kind": "empty_list", "count": 1}]},
    )
    glitch = anna.events().list(calendarId="primary").execute()
    assert glitch["items"] == [] and "nextSyncToken" in glitch
    assert len(anna.events().list(calendarId="primary").execute()["items"]) == 1


def test_batch_with_one_failing_part(anna: Any, google_url: str, key_path: Path) -> None:
    anna.events().insert(calendarId="primary", body={"id": "batch0001", **timed("2025-03-10", 9)}).execute()
    results: dict[str, tuple[Any, HttpError | None]] = {}

    def callback(request_id: str, response: Any, exception: HttpError | None) -> None:
        results[request_id] = (response, exception)

    batch = BatchHttpRequest(callback=callback, batch_uri=f"{google_url}/batch/calendar/v3")
    batch.add(
        anna.events().insert(
            calendarId="primary", body={"id": "batch0002", "summary": "Güterstraße", **timed("2025-03-11", 9)}
        ),
        request_id="new-2",
    )
    batch.add(
        anna.events().insert(calendarId="primary", body={"id": "batch0001", **timed("2025-03-11", 9)}),
        request_id="dup-1",
    )
    batch.add(
        anna.events().patch(calendarId="primary", eventId="batch0001", body={"summary": "batched"}),
        request_id="patch-1",
    )
    batch.add(anna.events().delete(calendarId="primary", eventId="batch0001"), request_id="delete-1")
    batch.execute()

    assert results["new-2"][1] is None and results["new-2"][0]["summary"] == "Güterstraße"
    assert results["dup-1"][1] is not None and results["dup-1"][1].status_code == 409
    assert reason_of(results["dup-1"][1]) == "duplicate"
    assert results["patch-1"][0]["summary"] == "batched"
    assert results["delete-1"][1] is None
    state = {e["id"]: e["status"] for e in admin(google_url, "/_sandbox/state")["calendars"][0]["events"]}
    assert state == {"batch0001": "cancelled", "batch0002": "confirmed"}
    stats = admin(google_url, "/_sandbox/stats")
    assert stats["requests"]["batch"] == 1 and stats["requests"]["events.insert"] == 3
    assert stats["writes"]["events.insert"] == 2  # the duplicate wrote nothing


def test_batch_parts_count_against_quota(anna: Any, google_url: str) -> None:
    admin(google_url, "/_sandbox/config", {"quota_requests": 3, "quota_window_s": 30, "quota_status": 429})
    statuses: dict[str, int] = {}

    def callback(request_id: str, response: Any, exception: HttpError | None) -> None:
        statuses[request_id] = exception.status_code if exception else 200

    batch = BatchHttpRequest(callback=callback, batch_uri=f"{google_url}/batch/calendar/v3")
    for i in range(5):
        batch.add(
            anna.events().insert(calendarId="primary", body={"id": f"quota{i:04d}", **timed("2025-03-10", 9)}),
            request_id=str(i),
        )
    batch.execute()
    assert statuses == {"0": 200, "1": 200, "2": 200, "3": 429, "4": 429}


# -- calendars, ACL, calendarList, seed ----------------------------------------------------------
def test_calendars_acl_and_calendar_list(google_url: str, key_path: Path) -> None:
    sa = service_for(google_url, creds_for(key_path))
    anna = service_for(google_url, creds_for(key_path, ANNA))
    bob = service_for(google_url, creds_for(key_path, BOB))
    shared = sa.calendars().insert(body={"summary": "Anna (Advoware)", "timeZone": "Europe/Berlin"}).execute()
    assert shared["id"].endswith("@group.calendar.google.com") and shared["timeZone"] == "Europe/Berlin"
    rule = (
        sa.acl()
        .insert(
            calendarId=shared["id"],
            sendNotifications=False,
            body={"role": "writer", "scope": {"type": "user", "value": ANNA}},
        )
        .execute()
    )
    assert rule["id"] == f"user:{ANNA}" and rule["role"] == "writer"
    assert {r["id"]: r["role"] for r in sa.acl().list(calendarId=shared["id"]).execute()["items"]} == {
        f"user:{SA_EMAIL}": "owner",
        f"user:{ANNA}": "writer",
    }

    listed = {c["id"]: c["accessRole"] for c in anna.calendarList().list().execute()["items"]}
    assert listed == {ANNA: "owner", shared["id"]: "writer"}
    anna.events().insert(calendarId=shared["id"], body=timed("2025-03-10", 9)).execute()
    expect_error(lambda: bob.events().list(calendarId=shared["id"]).execute(), 404, "notFound")
    expect_error(lambda: anna.acl().list(calendarId=shared["id"]).execute(), 403, "requiredAccessLevel")

    sa.acl().insert(calendarId=shared["id"], body={"role": "reader", "scope": {"type": "user", "value": BOB}}).execute()
    assert len(bob.events().list(calendarId=shared["id"]).execute()["items"]) == 1
    expect_error(
        lambda: bob.events().insert(calendarId=shared["id"], body=timed("2025-03-10", 9)).execute(),
        403,
        "requiredAccessLevel",
    )

    assert sa.calendars().get(calendarId=shared["id"]).execute()["summary"] == "Anna (Advoware)"
    sa.calendars().delete(calendarId=shared["id"]).execute()  # "deleted by hand"
    expect_error(lambda: anna.events().list(calendarId=shared["id"]).execute(), 404, "notFound")
    expect_error(lambda: sa.calendars().insert(body={"timeZone": "Europe/Berlin"}).execute(), 400, "required")


def test_seed_and_state(anna: Any, google_url: str) -> None:
    seeded = admin(
        google_url,
        "/_sandbox/seed",
        {
            "calendars": [
                {
                    "id": "old@group.calendar.google.com",
                    "summary": "alt",
                    "owner": ANNA,
                    "timeZone": "Europe/Berlin",
                }
            ],
            "events": {
                "old@group.calendar.google.com": [
                    {"id": "legac0001", "summary": "unmarked copy", **timed("2025-03-10", 9)},
                    {"id": "legac0002", "status": "cancelled", **timed("2025-03-11", 9)},
                ]
            },
        },
    )
    assert seeded == {"calendars": ["old@group.calendar.google.com"], "events": 2}
    items = anna.events().list(calendarId="old@group.calendar.google.com").execute()["items"]
    assert [(e["id"], e["summary"]) for e in items] == [("legac0001", "unmarked copy")]
    assert items[0]["start"] == {"dateTime": "2025-03-10T09:00:00+01:00", "timeZone": "Europe/Berlin"}
    state = admin(google_url, "/_sandbox/state")
    old = next(c for c in state["calendars"] if c["id"] == "old@group.calendar.google.com")
    assert {e["id"]: e["status"] for e in old["events"]} == {
        "legac0001": "confirmed",
        "legac0002": "cancelled",
    }


def test_seed_number_creates_the_firms_accounts(google_url: str) -> None:
    from sandbox.firm import generate_firm

    answer = httpx.post(f"{google_url}/_sandbox/seed", json={"seed": 3, "employees": 4}, timeout=10)
    answer.raise_for_status()
    emails = [e["email"] for e in generate_firm(3, employees=4, appointments_per_employee=0, parties=0).employees]
    assert answer.json()["calendars"] == emails
    state = httpx.get(f"{google_url}/_sandbox/state", timeout=10).json()
    owners = {cal["owner"] for cal in state["calendars"]}
    assert set(emails) <= owners
