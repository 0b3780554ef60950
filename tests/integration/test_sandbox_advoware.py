"""The Advoware sandbox: HMAC token gateway, Termine, Beteiligte, Kommunikationen, faults, stats.

The token signature is computed here independently (hmac/hashlib/base64), not with sandbox code.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

# The working sandbox credentials of .env.example.
APP_ID = "sandbox-app"
API_KEY = "c2FuZGJveC1hZHZvd2FyZS1hcGkta2V5LTAxMjM0NTY3ODk="
CREDS = {
    "Kanzlei": "KANZLEI1",
    "Database": "ADVOWARE",
    "User": "sync",
    "Role": 2,
    "Product": 64,
    "Password": "sandbox-password",
}
API = "/api/v1/advonet"


def token_body(
    *, key: str = API_KEY, nonce: str | None = None, stamp: str | None = None, **overrides: Any
) -> dict[str, Any]:
    nonce = nonce or str(uuid.uuid4())
    stamp = stamp or datetime.now(UTC).isoformat().replace("+00:00", "Z")
    body = {"AppID": APP_ID, **CREDS, "Nonce": nonce, "RequestTimeStamp": stamp, **overrides}
    message = f"{body['Product']}:{body['AppID']}:{nonce}:{stamp}".encode()
    digest = hmac.new(base64.b64decode(key), message, hashlib.sha512).digest()
    body["HMAC512Signature"] = base64.b64encode(digest).decode()
    return body


def get_token(url: str) -> str:
    answer = httpx.post(f"{url}/api/v1/Token", json=token_body(), timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()["access_token"]


@pytest.fixture
def api(advoware_url: str) -> Iterator[httpx.Client]:
    client = httpx.Client(
        base_url=advoware_url, timeout=10, headers={"Authorization": f"Bearer {get_token(advoware_url)}"}
    )
    yield client
    client.close()


def seed(url: str, **body: Any) -> dict[str, Any]:
    answer = httpx.post(f"{url}/_sandbox/seed", json=body, timeout=30)
    answer.raise_for_status()
    return answer.json()


def termin(
    kuerzel: str = "AB", datum: str = "2025-03-03T10:00:00", datum_bis: str = "2025-03-03T11:00:00", **extra: Any
) -> dict[str, Any]:
    return {
        "text": "Besprechung",
        "notiz": "",
        "ort": "Kanzlei",
        "kuerzel": kuerzel,
        "anwalt": kuerzel,
        "datum": datum,
        "uhrzeitVon": datum[11:],
        "datumBis": datum_bis,
        "uhrzeitBis": datum_bis[11:],
        "abwesenheit": 0,
        "privat": 0,
        "dauertermin": 0,
        "turnus": 0,
        "turnusArt": 0,
        **extra,
    }


# -- token gateway -------------------------------------------------------------------------------
def test_independently_signed_token_request_is_accepted(advoware_url: str) -> None:
    answer = httpx.post(f"{advoware_url}/api/v1/Token", json=token_body(), timeout=10)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600 and body["access_token"]
    listed = httpx.get(
        f"{advoware_url}{API}/Mitarbeiter", timeout=10, headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    assert listed.status_code == 200 and listed.json() == []


@pytest.mark.parametrize("case", ["wrong_signature", "stale", "future", "wrong_password", "wrong_app"])
def test_bad_token_requests_are_refused(advoware_url: str, case: str) -> None:
    now = datetime.now(UTC)
    body = {
        "wrong_signature": lambda: token_body(key=base64.b64encode(b"another-key").decode()),
        "stale": lambda: token_body(stamp=(now - timedelta(minutes=6)).isoformat()),
        "future": lambda: token_body(stamp=(now + timedelta(minutes=6)).isoformat()),
        "wrong_password": lambda: token_body(Password="guess"),
        "wrong_app": lambda: token_body(AppID="other-app"),
    }[case]()
    answer = httpx.post(f"{advoware_url}/api/v1/Token", json=body, timeout=10)
    assert answer.status_code == 401, answer.text
    assert "access_token" not in answer.json()


def test_tampered_field_breaks_signature(advoware_url: str) -> None:
    body = token_body()
    body["Nonce"] = str(uuid.uuid4())  # signed with another nonce
    assert httpx.post(f"{advoware_url}/api/v1/Token", json=body, timeout=10).status_code == 401


def test_reused_nonce_is_refused(advoware_url: str) -> None:
    body = token_body()
    assert httpx.post(f"{advoware_url}/api/v1/Token", json=body, timeout=10).status_code == 200
    again = token_body(nonce=body["Nonce"])  # fresh timestamp, correct signature, same nonce
    assert httpx.post(f"{advoware_url}/api/v1/Token", json=again, timeout=10).status_code == 401


def test_api_needs_a_valid_bearer_token(advoware_url: str) -> None:
    assert httpx.get(f"{advoware_url}{API}/Termine?kuerzel=AB", timeout=10).status_code == 401
    bogus = httpx.get(
        f"{advoware_url}{API}/Termine?kuerzel=AB", timeout=10, headers={"Authorization": "Bearer not-a-token"}
    )
    assert bogus.status_code == 401


def test_token_expires(advoware_url: str) -> None:
    httpx.post(f"{advoware_url}/_sandbox/config", json={"token_ttl_s": 1}, timeout=10).raise_for_status()
    token = get_token(advoware_url)
    headers = {"Authorization": f"Bearer {token}"}
    assert httpx.get(f"{advoware_url}{API}/Mitarbeiter", headers=headers, timeout=10).status_code == 200
    deadline = time.monotonic() + 10
    while True:
        status = httpx.get(f"{advoware_url}{API}/Mitarbeiter", headers=headers, timeout=10).status_code
        if status == 401:
            break
        assert status == 200
        assert time.monotonic() < deadline, "token did not expire"
        time.sleep(0.1)
    fresh = {"Authorization": f"Bearer {get_token(advoware_url)}"}
    assert httpx.get(f"{advoware_url}{API}/Mitarbeiter", headers=fresh, timeout=10).status_code == 200


def test_revoked_tokens_get_401(api: httpx.Client) -> None:
    assert api.get(f"{API}/Mitarbeiter").status_code == 200
    assert api.post("/_sandbox/revoke_tokens").json()["revoked"] >= 1
    assert api.get(f"{API}/Mitarbeiter").status_code == 401


def test_configurator_discovery(advoware_url: str) -> None:
    answer = httpx.get(f"{advoware_url}/AdvonetConfigurator/api/Url", params={"Kanzlei": "KANZLEI1"}, timeout=10)
    assert answer.status_code == 200
    assert answer.json()["connectorUrl"] == advoware_url and answer.json()["securityGateway"] == advoware_url


# -- Termine -------------------------------------------------------------------------------------
def test_termine_crud_and_change_stamp(api: httpx.Client) -> None:
    created = api.post(f"{API}/Termine", json=termin(text="Mandantengespräch"))
    assert created.status_code == 200, created.text
    record = created.json()
    frnr = record["frNr"]
    assert isinstance(frnr, int) and frnr > 0 and record["text"] == "Mandantengespräch"
    other = api.post(f"{API}/Termine", json=termin(text="Zweiter")).json()
    assert other["frNr"] != frnr

    assert api.get(f"{API}/Termine", params={"frnr": frnr}).json() == [record]
    # `frNr` is not a filter in production: the call lists everything instead of one record
    unfiltered = api.get(f"{API}/Termine", params={"frNr": frnr}).json()
    assert {t["frNr"] for t in unfiltered} == {frnr, other["frNr"]}

    stamps = [record["zuletztGeaendertAm"]]
    for text in ("geändert", "noch einmal geändert"):  # two writes within the same second
        updated = api.put(f"{API}/Termine", params={"frnr": frnr}, json={"text": text})
        assert updated.status_code == 200
        assert updated.json()["text"] == text and updated.json()["ort"] == "Kanzlei"
        stamps.append(updated.json()["zuletztGeaendertAm"])
    assert stamps[0] < stamps[1] < stamps[2]
    assert api.get(f"{API}/Termine", params={"frnr": frnr}).json()[0]["zuletztGeaendertAm"] == stamps[2]

    assert api.delete(f"{API}/Termine", params={"frnr": frnr}).status_code in (200, 204)
    assert api.get(f"{API}/Termine", params={"frnr": frnr}).json() == []
    assert api.delete(f"{API}/Termine", params={"frnr": frnr}).status_code == 404
    assert api.put(f"{API}/Termine", params={"frnr": frnr}, json={"text": "x"}).status_code == 404
    assert api.post(f"{API}/Termine", json={"text": "ohne Datum"}).status_code == 400


def test_list_returns_series_overlapping_the_window(api: httpx.Client) -> None:
    series = api.post(
        f"{API}/Termine",
        json=termin(
            datum="2025-01-06T09:00:00",
            datum_bis="2025-06-30T10:00:00",
            dauertermin=1,
            turnus=1,
            turnusArt=2,
            text="Jour fixe",
        ),
    ).json()
    inside = api.post(
        f"{API}/Termine", json=termin(datum="2025-03-04T14:00:00", datum_bis="2025-03-04T15:00:00")
    ).json()
    multi_day = api.post(
        f"{API}/Termine", json=termin(datum="2025-02-25T00:00:00", datum_bis="2025-03-02T23:59:00", abwesenheit=1)
    ).json()
    api.post(f"{API}/Termine", json=termin(datum="2025-04-01T14:00:00", datum_bis="2025-04-01T15:00:00"))
    api.post(f"{API}/Termine", json=termin(kuerzel="XY", datum="2025-03-04T14:00:00", datum_bis="2025-03-04T15:00:00"))

    window = api.get(f"{API}/Termine", params={"kuerzel": "AB", "from": "2025-03-01", "to": "2025-03-07"})
    assert window.status_code == 200
    assert {t["frNr"] for t in window.json()} == {series["frNr"], inside["frNr"], multi_day["frNr"]}
    later = api.get(f"{API}/Termine", params={"kuerzel": "AB", "from": "2025-07-01", "to": "2025-07-31"})
    assert later.json() == []


# -- Beteiligte and Kommunikationen --------------------------------------------------------------
def test_beteiligte_row_id_conflict(api: httpx.Client) -> None:
    created = api.post(f"{API}/Beteiligte", json={"name": "Muster GmbH", "rechtsform": "GmbH", "ort": "Köln"})
    assert created.status_code == 200
    party = created.json()
    bet_nr, row_id = party["betNr"], party["rowId"]
    assert party["geaendertAm"] and row_id

    first = api.put(f"{API}/Beteiligte/{bet_nr}", json={"rowId": row_id, "ort": "Bonn"})
    assert first.status_code == 200
    assert first.json()["rowId"] != row_id and first.json()["geaendertAm"] > party["geaendertAm"]

    stale = api.put(f"{API}/Beteiligte/{bet_nr}", json={"rowId": row_id, "ort": "Aachen"})
    assert stale.status_code == 409
    assert api.get(f"{API}/Beteiligte/{bet_nr}").json()["ort"] == "Bonn"
    assert [p["betNr"] for p in api.get(f"{API}/Beteiligte", params={"name": "muster"}).json()] == [bet_nr]
    assert api.get(f"{API}/Beteiligte", params={"name": "nobody"}).json() == []

    assert api.delete(f"{API}/Beteiligte/{bet_nr}").status_code in (200, 204)
    assert api.get(f"{API}/Beteiligte/{bet_nr}").status_code == 404


def test_kommunikationen_kommkz_read_only_and_delete_forbidden(api: httpx.Client) -> None:
    bet_nr = api.post(f"{API}/Beteiligte", json={"name": "Schmidt", "vorname": "Eva"}).json()["betNr"]
    base = f"{API}/Beteiligte/{bet_nr}/Kommunikationen"
    komm = api.post(base, json={"kommKz": 4, "tlf": "eva@mail.example"}).json()
    assert komm["kommKz"] == 4 and komm["tlf"] == "eva@mail.example"

    updated = api.put(f"{base}/{komm['id']}", json={"kommKz": 1, "tlf": "eva.schmidt@mail.example"}).json()
    assert updated["kommKz"] == 4 and updated["tlf"] == "eva.schmidt@mail.example"

    assert api.delete(f"{base}/{komm['id']}").status_code == 403
    assert api.get(base).json() == [updated]
    assert api.get(f"{API}/Beteiligte/{bet_nr}").json()["kommunikation"] == [updated]


# -- faults and stats ----------------------------------------------------------------------------
def test_count_based_503_with_retry_after(api: httpx.Client) -> None:
    api.post(
        "/_sandbox/faults",
        json={"faults": [{"match": "Termine.list", "kind": "status", "status": 503, "retry_after": 7, "count": 2}]},
    )
    for _ in range(2):
        answer = api.get(f"{API}/Termine", params={"kuerzel": "AB"})
        assert answer.status_code == 503 and answer.headers["Retry-After"] == "7"
    assert api.get(f"{API}/Termine", params={"kuerzel": "AB"}).status_code == 200


def test_empty_list_glitch(api: httpx.Client, advoware_url: str) -> None:
    second = termin(datum="2025-03-05T10:00:00", datum_bis="2025-03-05T11:00:00")
    seed(advoware_url, termine=[termin(), second])
    glitch = {"match": "Termine.list", "kind": "empty_list", "count": 1}
    api.post("/_sandbox/faults", json={"faults": [glitch]})
    params = {"kuerzel": "AB", "from": "2025-03-01", "to": "2025-03-31"}
    assert api.get(f"{API}/Termine", params=params).json() == []
    assert len(api.get(f"{API}/Termine", params=params).json()) == 2


def test_dropped_connection(api: httpx.Client) -> None:
    api.post("/_sandbox/faults", json={"faults": [{"match": "Mitarbeiter.list", "kind": "drop", "count": 1}]})
    with pytest.raises(httpx.TransportError):
        api.get(f"{API}/Mitarbeiter").json()
    assert api.get(f"{API}/Mitarbeiter").status_code == 200


def test_a_write_held_by_a_timeout_fault_does_nothing_after_a_reset(api: httpx.Client, advoware_url: str) -> None:
    """A request still sleeping in a timeout fault when the sandbox is reset belongs to the old world: it
    must not write into the new one (else it lands in whichever test comes next)."""
    delay = {"match": "Termine.create", "kind": "timeout", "delay_s": 5, "count": 1}
    api.post("/_sandbox/faults", json={"faults": [delay]})
    answers: list[httpx.Response | Exception] = []

    def post() -> None:
        try:
            answers.append(api.post(f"{API}/Termine", json=termin(), timeout=30))
        except httpx.TransportError as exc:
            answers.append(exc)

    held = threading.Thread(target=post)
    held.start()
    deadline = time.monotonic() + 30
    while api.get("/_sandbox/stats").json()["requests"].get("Termine.create") != 1:  # counted, now sleeping
        assert time.monotonic() < deadline, "the POST never reached the sandbox"
        time.sleep(0.02)
    httpx.post(f"{advoware_url}/_sandbox/reset", timeout=10).raise_for_status()
    held.join(timeout=60)
    assert not held.is_alive() and len(answers) == 1
    assert isinstance(answers[0], httpx.TransportError), "the held request must not be answered as a success"
    assert api.get("/_sandbox/stats").json()["writes"] == {}
    fresh = {"Authorization": f"Bearer {get_token(advoware_url)}"}  # the reset revoked the old token
    listed = httpx.get(f"{advoware_url}{API}/Termine", params={"kuerzel": "AB"}, headers=fresh, timeout=10)
    assert listed.status_code == 200 and listed.json() == []


def test_stats_count_only_successful_writes(api: httpx.Client) -> None:
    api.post("/_sandbox/faults", json={"faults": [{"match": "Termine.create", "kind": "status", "count": 1}]})
    assert api.post(f"{API}/Termine", json=termin()).status_code == 503
    frnr = api.post(f"{API}/Termine", json=termin()).json()["frNr"]
    assert api.put(f"{API}/Termine", params={"frnr": frnr}, json={"text": "neu"}).status_code == 200
    assert api.put(f"{API}/Termine", params={"frnr": frnr + 999}, json={"kuerzel": "AB"}).status_code == 404
    api.get(f"{API}/Termine", params={"kuerzel": "AB"})

    stats = api.get("/_sandbox/stats").json()
    assert stats["writes"] == {"Termine.create": 1, "Termine.update": 1}
    assert stats["requests"]["Termine.create"] == 2 and stats["requests"]["Termine.update"] == 2
    assert stats["by_principal"]["AB"] == {"requests": 5, "writes": 2}
    assert stats["faults"] == {"Termine.create": 1}


# -- seeding from the generator ------------------------------------------------------------------
def test_seed_from_generator_is_listed_by_kuerzel(api: httpx.Client, advoware_url: str) -> None:
    counts = seed(advoware_url, seed=4, employees=3, appointments_per_employee=12, start="2025-03-01")
    assert counts["mitarbeiter"] == 3 and counts["termine"] >= 36
    again = seed(advoware_url, seed=4, employees=3, appointments_per_employee=12, start="2025-03-01")
    assert again == counts  # a generated seed replaces, it does not pile up

    staff = api.get(f"{API}/Mitarbeiter").json()
    state = api.get("/_sandbox/state").json()
    assert [m["kuerzel"] for m in staff] == [m["kuerzel"] for m in state["mitarbeiter"]]
    code = staff[0]["kuerzel"]
    own = [t for t in state["termine"] if t["kuerzel"] == code]
    assert any(t["frNr"] < 0 for t in own) and any(t["dauertermin"] == 1 for t in own)
    everything = {"kuerzel": code, "from": "2025-01-01", "to": "2038-01-01"}
    listed = api.get(f"{API}/Termine", params=everything).json()
    assert sorted(t["frNr"] for t in listed) == sorted(t["frNr"] for t in own)
    # the open-ended series (datumBis 2037) is part of a window far in the future
    far = api.get(f"{API}/Termine", params={"kuerzel": code, "from": "2030-01-01", "to": "2030-01-31"}).json()
    assert any(t["datumBis"].startswith("2037") for t in far)


@pytest.mark.parametrize("mode", ["gzip", "deflate"])
def test_compression_switch_answers_compressed_when_offered(advoware_url: str, mode: str) -> None:
    import gzip
    import zlib

    assert httpx.post(f"{advoware_url}/_sandbox/config", json={"compress": mode}).json()["compress"] == mode
    headers = {"Authorization": f"Bearer {get_token(advoware_url)}"}
    with httpx.Client() as http:
        offered = http.send(
            http.build_request("GET", f"{advoware_url}{API}/Mitarbeiter", headers={**headers, "Accept-Encoding": mode}),
            stream=True,
        )
        raw = b"".join(offered.iter_raw())
        plain = http.get(f"{advoware_url}{API}/Mitarbeiter", headers={**headers, "Accept-Encoding": "identity"})
    assert offered.headers["content-encoding"] == mode and "content-encoding" not in plain.headers
    unpacked = gzip.decompress(raw) if mode == "gzip" else zlib.decompress(raw)
    assert unpacked == plain.content
    httpx.post(f"{advoware_url}/_sandbox/reset")
    assert "content-encoding" not in httpx.get(f"{advoware_url}{API}/Mitarbeiter", headers=headers).headers
