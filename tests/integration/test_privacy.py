"""Privacy by default: with SYNC_ANONYMIZE unset, a calendar run sends Google no title, note, place,
matter or attendee of an appointment; the times arrive. Checked on what the Google sandbox stored."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from include.calendar_sync.runner import sync_all
from include.settings import Settings, SyncSettings
from tests.calendar_helpers import google_state, make_ctx, seed_firm, termine

pytestmark = pytest.mark.timeout(120)


def test_anonymisation_is_the_default() -> None:
    assert SyncSettings(_env_file=None).anonymize is True
    assert Settings(_env_file=None).sync.anonymize is True


def _texts(termin: dict[str, Any]) -> set[str]:
    """What an appointment says in words (title, note, place, matter), each non-empty."""
    values = [termin.get(k) for k in ("text", "notiz", "ort", "azRubrum")]
    return {str(v) for v in values if v not in (None, "")}


def test_an_anonymised_run_sends_google_only_times(
    advoware_url: str, google_url: str, redis_url: str, hub: str, tmp_path: Path
) -> None:
    seed_firm(advoware_url)
    secrets = set().union(*(_texts(t) for t in termine(advoware_url) if int(t["frNr"]) > 0))
    assert any(t.get("notiz") for t in termine(advoware_url)) and any(t.get("ort") for t in termine(advoware_url))
    assert any(t.get("nr") for t in termine(advoware_url)), "the seeded firm has appointments with matters"

    ctx = make_ctx(advoware_url, google_url, redis_url, hub, tmp_path, anonymize=SyncSettings(_env_file=None).anonymize)
    try:
        _, results = sync_all(ctx)
    finally:
        ctx.close()
    assert results and all(r.get("status") == "success" for r in results.values()), results

    events = [e for cal in google_state(google_url)["calendars"] for e in cal["events"]]
    assert len(events) >= len([t for t in termine(advoware_url) if int(t["frNr"]) > 0]) // 2  # they did arrive
    for event in events:
        assert event.get("summary") == "Termin", event["id"]
        assert not event.get("description") and not event.get("location") and not event.get("attendees")
        assert event["start"] and event["end"]  # the times do go
        private = (event.get("extendedProperties") or {}).get("private") or {}
        assert not {"advowareAkteNr", "advowareAzRubrum"} & set(private), event["id"]
        stored = repr(event)
        leaked = [s for s in secrets if len(s) > 3 and s in stored]
        assert leaked == [], f"event {event['id']} carries appointment texts"
