"""The Google sandbox's push notifications, driven through the unchanged google-api-python-client:
events.watch and channels.stop as Google's reference has them, and the messages as Google sends them
(sync on creation, exists per change, asynchronously, Google's headers, retries only after a 5xx)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import pytest
from googleapiclient.http import BatchHttpRequest

from tests.integration.test_sandbox_google import ANNA, BOB, creds_for, expect_error, key_path, service_for, timed
from tests.push_helpers import Receiver, running_receiver, wait_for

__all__ = ["key_path"]  # the fixture, imported for pytest


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as r:
        yield r


@pytest.fixture
def anna(google_url: str, key_path: Any) -> Any:
    return service_for(google_url, creds_for(key_path, ANNA))


def configure(google_url: str, **knobs: Any) -> None:
    httpx.post(f"{google_url}/_sandbox/config", json=knobs, timeout=10).raise_for_status()


def push_state(google_url: str) -> dict[str, Any]:
    return httpx.get(f"{google_url}/_sandbox/push", timeout=10).json()


def watch(service: Any, receiver: Receiver, channel_id: str, **extra: Any) -> dict[str, Any]:
    body = {"id": channel_id, "type": "web_hook", "address": receiver.url, **extra}
    return service.events().watch(calendarId="primary", body=body).execute()


def messages(receiver: Receiver, channel_id: str, count: int) -> list[Any]:
    return wait_for(
        lambda: (got := receiver.of(channel_id)) and len(got) >= count and got, what=f"{count} messages on {channel_id}"
    )


def insert(service: Any, summary: str = "Termin") -> dict[str, Any]:
    return service.events().insert(calendarId="primary", body={"summary": summary, **timed("2026-03-02", 9)}).execute()


# -- events.watch / channels.stop ---------------------------------------------------------------
def test_watch_answers_a_channel_and_google_opens_it_with_a_sync_message(anna: Any, receiver: Receiver) -> None:
    before_ms = int(time.time() * 1000)
    channel = watch(anna, receiver, "chan-1", token="s3cret", params={"ttl": "3600"})

    assert channel["kind"] == "api#channel"
    assert channel["id"] == "chan-1"
    assert channel["token"] == "s3cret"
    assert channel["resourceId"] and channel["resourceUri"].endswith(f"/calendars/{ANNA}/events?alt=json")
    expiration = int(channel["expiration"])  # milliseconds, an int64 as a string
    assert before_ms + 3_590_000 <= expiration <= int(time.time() * 1000) + 3_600_000

    (sync,) = messages(receiver, "chan-1", 1)
    assert sync.body == b""
    assert sync.headers["X-Goog-Resource-State"] == "sync"
    assert sync.headers["X-Goog-Message-Number"] == "1"
    assert sync.headers["X-Goog-Channel-Token"] == "s3cret"
    assert sync.headers["X-Goog-Resource-ID"] == channel["resourceId"]
    assert sync.headers["X-Goog-Resource-URI"] == channel["resourceUri"]
    sent_expiry = parsedate_to_datetime(sync.headers["X-Goog-Channel-Expiration"])  # RFC 1123
    assert int(sent_expiry.timestamp()) == expiration // 1000


def test_every_change_is_an_exists_message_with_increasing_numbers_own_writes_included(
    anna: Any, receiver: Receiver
) -> None:
    watch(anna, receiver, "chan-2")
    messages(receiver, "chan-2", 1)
    event = insert(anna)
    anna.events().patch(calendarId="primary", eventId=event["id"], body={"summary": "verlegt"}).execute()
    anna.events().delete(calendarId="primary", eventId=event["id"]).execute()

    got = messages(receiver, "chan-2", 4)
    assert [m.headers["X-Goog-Resource-State"] for m in got] == ["sync", "exists", "exists", "exists"]
    assert [int(m.headers["X-Goog-Message-Number"]) for m in got] == [1, 2, 3, 4]
    assert all("X-Goog-Channel-Token" not in m.headers for m in got)  # none was set
    assert all(m.body == b"" for m in got)


def test_delivery_is_asynchronous_the_write_answers_while_the_receiver_still_holds_the_message(
    anna: Any, receiver: Receiver
) -> None:
    watch(anna, receiver, "chan-async")
    messages(receiver, "chan-async", 1)
    receiver.gate.clear()  # the receiver holds every answer from now on
    insert(anna)  # returns although the message about it is not answered yet
    wait_for(lambda: len(receiver.of("chan-async")) == 2, what="the exists message arriving")
    assert push_state(anna_url(anna))["counts"].get("delivered") == 1  # only the sync so far
    receiver.gate.set()
    wait_for(lambda: push_state(anna_url(anna))["counts"].get("delivered") == 2, what="delivery")


def anna_url(service: Any) -> str:
    return service._baseUrl.split("/calendar/v3/")[0]


def test_channels_of_other_calendars_hear_nothing_and_numbers_are_per_channel(
    google_url: str, key_path: Any, anna: Any, receiver: Receiver
) -> None:
    bob = service_for(google_url, creds_for(key_path, BOB))
    watch(anna, receiver, "anna-chan")
    watch(bob, receiver, "bob-chan")
    insert(bob)
    got = messages(receiver, "bob-chan", 2)
    assert [m.headers["X-Goog-Message-Number"] for m in got] == ["1", "2"]
    assert len(receiver.of("anna-chan")) == 1  # its sync only: Bob's change is not Anna's calendar


def test_stop_ends_the_channel_and_a_stopped_channel_delivers_nothing(anna: Any, receiver: Receiver) -> None:
    channel = watch(anna, receiver, "to-stop")
    watch(anna, receiver, "witness")
    messages(receiver, "to-stop", 1)
    assert anna.channels().stop(body={"id": "to-stop", "resourceId": channel["resourceId"]}).execute() in ("", None)

    insert(anna)
    messages(receiver, "witness", 2)  # the change was delivered where a channel still listens
    assert len(receiver.of("to-stop")) == 1
    states = {c["id"]: c["state"] for c in push_state(anna_url(anna))["channels"]}
    assert states == {"to-stop": "stopped", "witness": "active"}


def test_stop_of_an_unknown_or_already_stopped_channel_is_404(anna: Any, receiver: Receiver) -> None:
    channel = watch(anna, receiver, "once")
    expect_error(
        lambda: anna.channels().stop(body={"id": "nope", "resourceId": channel["resourceId"]}).execute(),
        404,
        "notFound",
    )
    expect_error(lambda: anna.channels().stop(body={"id": "once", "resourceId": "other"}).execute(), 404, "notFound")
    anna.channels().stop(body={"id": "once", "resourceId": channel["resourceId"]}).execute()
    expect_error(
        lambda: anna.channels().stop(body={"id": "once", "resourceId": channel["resourceId"]}).execute(),
        404,
        "notFound",
    )


def test_watch_refuses_bad_requests(anna: Any, receiver: Receiver, google_url: str) -> None:
    watch(anna, receiver, "dup")
    expect_error(lambda: watch(anna, receiver, "dup"), 400, "channelIdNotUnique")
    expect_error(
        lambda: anna.events().watch(calendarId="primary", body={"id": "x", "address": receiver.url}).execute(),
        400,
        "required",
    )
    expect_error(lambda: watch(anna, receiver, "x", type="email"), 400, "invalid")
    expect_error(lambda: watch(anna, receiver, "bad id with spaces"), 400, "invalid")
    expect_error(lambda: watch(anna, receiver, "x", token="t" * 257), 400, "invalid")
    configure(google_url, push_require_https=True)
    expect_error(lambda: watch(anna, receiver, "plain-http"), 400, "push.webhookUrlNotHttps")


# -- expiry ------------------------------------------------------------------------------------
def test_expiration_is_capped_and_an_expired_channel_delivers_nothing(
    google_url: str, anna: Any, receiver: Receiver
) -> None:
    configure(google_url, push_max_ttl_s=1.0)
    asked = int(time.time() * 1000) + 7 * 86_400_000
    short = watch(anna, receiver, "short", expiration=str(asked))
    assert int(short["expiration"]) <= int(time.time() * 1000) + 1000  # the cap, not the week asked for
    messages(receiver, "short", 1)
    wait_for(lambda: time.time() * 1000 > int(short["expiration"]), what="the channel's expiry")
    configure(google_url, push_max_ttl_s=3600.0)
    watch(anna, receiver, "witness")

    insert(anna)
    messages(receiver, "witness", 2)
    assert len(receiver.of("short")) == 1
    states = {c["id"]: c["state"] for c in push_state(google_url)["channels"]}
    assert states["short"] == "expired"


def test_admin_expiry_ends_a_channel_at_once(google_url: str, anna: Any, receiver: Receiver) -> None:
    watch(anna, receiver, "gone")
    watch(anna, receiver, "witness")
    messages(receiver, "gone", 1)
    assert httpx.post(f"{google_url}/_sandbox/push/expire", json={"id": "gone"}).json() == {"expired": ["gone"]}
    insert(anna)
    messages(receiver, "witness", 2)
    assert len(receiver.of("gone")) == 1


# -- retries -----------------------------------------------------------------------------------
def test_a_5xx_is_retried_with_exponential_backoff_until_it_is_taken(
    google_url: str, anna: Any, receiver: Receiver
) -> None:
    configure(google_url, push_retry_base_s=0.3)
    receiver.statuses = [503, 500, 200]
    watch(anna, receiver, "flaky")
    got = messages(receiver, "flaky", 3)
    assert {m.headers["X-Goog-Message-Number"] for m in got} == {"1"}  # the same message, again
    first_gap, second_gap = got[1].at - got[0].at, got[2].at - got[1].at
    assert first_gap >= 0.3 and second_gap >= 0.6  # never sooner than the backoff allows
    wait_for(lambda: push_state(google_url)["counts"].get("delivered") == 1, what="delivery")
    counts = push_state(google_url)["counts"]
    assert counts["retried"] == 2 and counts["attempts"] == 3


@pytest.mark.parametrize("status", [400, 404, 410, 501])
def test_any_other_answer_ends_the_message_without_retry(
    google_url: str, anna: Any, receiver: Receiver, status: int
) -> None:
    configure(google_url, push_retry_base_s=0.05)
    receiver.statuses = [status]
    watch(anna, receiver, "refused")
    insert(anna)  # the next message comes after the refused one: proof that no retry was queued
    got = messages(receiver, "refused", 2)
    assert [m.headers["X-Goog-Message-Number"] for m in got] == ["1", "2"]
    wait_for(lambda: push_state(google_url)["counts"].get("delivered") == 1, what="the second delivery")
    assert push_state(google_url)["counts"]["failed"] == 1
    assert "retried" not in push_state(google_url)["counts"]


def test_an_unreachable_address_is_retried_then_given_up(google_url: str, anna: Any, receiver: Receiver) -> None:
    configure(google_url, push_retry_base_s=0.05, push_max_attempts=3)
    closed = Receiver()
    address = closed.url
    closed.server.server_close()  # nothing listens there
    anna.events().watch(calendarId="primary", body={"id": "dead", "type": "web_hook", "address": address}).execute()
    wait_for(lambda: push_state(google_url)["counts"].get("failed") == 1, what="giving up")
    counts = push_state(google_url)["counts"]
    assert counts["attempts"] == 3 and counts["retried"] == 2


# -- knobs -------------------------------------------------------------------------------------
def test_batching_makes_several_changes_one_message(
    google_url: str, key_path: Any, anna: Any, receiver: Receiver
) -> None:
    configure(google_url, push_batch_s=1.0)
    watch(anna, receiver, "batched")
    messages(receiver, "batched", 1)
    batch = BatchHttpRequest(batch_uri=f"{google_url}/batch/calendar/v3")
    for i in range(3):
        batch.add(anna.events().insert(calendarId="primary", body={"summary": f"T{i}", **timed("2026-03-02", 9 + i)}))
    batch.execute(http=anna._http)
    wait_for(lambda: push_state(google_url)["counts"].get("delivered") == 2, what="the batched message")
    last = push_state(google_url)["deliveries"][-1]
    assert last["state"] == "exists" and last["changes"] == 3
    assert push_state(google_url)["counts"]["batched"] == 2


def test_delay_holds_each_message_back(google_url: str, anna: Any, receiver: Receiver) -> None:
    configure(google_url, push_delay_s=0.5)
    watch(anna, receiver, "slow")
    messages(receiver, "slow", 1)
    written = time.monotonic()
    insert(anna)
    got = messages(receiver, "slow", 2)
    assert got[1].at - written >= 0.5


def test_loss_drops_messages_and_duplicates_repeat_them(google_url: str, anna: Any, receiver: Receiver) -> None:
    configure(google_url, push_duplicates=1.0)
    watch(anna, receiver, "twice")
    got = messages(receiver, "twice", 2)
    assert [m.headers["X-Goog-Message-Number"] for m in got] == ["1", "1"]

    configure(google_url, push_duplicates=0.0, push_loss=1.0)
    watch(anna, receiver, "lost")
    insert(anna)
    # lost: the new channel's sync, and the change's message on each of the two channels
    wait_for(lambda: push_state(google_url)["counts"].get("lost") == 3, what="the messages lost")
    assert receiver.of("lost") == []
    assert len(receiver.of("twice")) == 2


def test_reset_closes_every_channel(google_url: str, anna: Any, receiver: Receiver) -> None:
    watch(anna, receiver, "old")
    messages(receiver, "old", 1)
    httpx.post(f"{google_url}/_sandbox/reset", timeout=10).raise_for_status()
    assert push_state(google_url)["channels"] == []
