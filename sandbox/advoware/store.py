"""In-memory state of the Advoware sandbox: Termine, Mitarbeiter, Beteiligte and their Kommunikationen.

Handlers run on one asyncio loop and never await between reading and writing the store, so no lock
is needed. Change stamps come from one clock that strictly moves forward, even for two writes in
the same microsecond.
"""

from __future__ import annotations

import base64
from datetime import date, datetime, timedelta
from typing import Any

from include.advoware.beteiligte import BETEILIGTE_FIELDS
from sandbox.firm import BERLIN, TERMIN_FIELDS, fmt_dt, fmt_stamp, generate_firm

# Advoware's communication kinds (kommKz). Only the value is stored; clients map phone/e-mail.
KOMM_KZ = {
    1: "TelGesch",
    2: "FaxGesch",
    3: "Mobil",
    4: "MailGesch",
    5: "Internet",
    6: "TelPrivat",
    7: "FaxPrivat",
    8: "MailPrivat",
    9: "AutoTelefon",
    10: "Sonstige",
    11: "EPost",
    12: "Bea",
}
KOMM_FIELDS = ("tlf", "bemerkung", "online")
_TERMIN_DEFAULTS: dict[str, Any] = {
    "text": "",
    "notiz": "",
    "ort": "",
    "kuerzel": "",
    "anwalt": "",
    "datumBis": None,
    "uhrzeitBis": None,
    "abwesenheit": 0,
    "privat": 0,
    "dauertermin": 0,
    "turnus": 0,
    "turnusArt": 0,
    "erinnerung": 0,
    "erinnerungsDatum": None,
    "nr": None,
    "azRubrum": "",
}
_INT_FIELDS = ("abwesenheit", "privat", "dauertermin", "turnus", "turnusArt", "erinnerung")


class InvalidRecord(ValueError):
    """A body the real service would reject with 400."""


class StaleRowId(Exception):
    """PUT with a rowId that is no longer current (409)."""


def _local(value: Any, field: str) -> datetime:
    """Parse an Advoware date-time: local Europe/Berlin, no offset (an offset is converted)."""
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        raise InvalidRecord(f"{field} is not YYYY-MM-DD[THH:MM:SS]: {value!r}") from None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(BERLIN).replace(tzinfo=None)
    return parsed


def _check_komm(body: Any) -> int:
    """Validate a new Kommunikation; answer its kommKz."""
    if not isinstance(body, dict):
        raise InvalidRecord("a Kommunikation is a JSON object")
    try:
        kind = int(body.get("kommKz"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InvalidRecord("kommKz must be an integer") from None
    if kind not in KOMM_KZ:
        raise InvalidRecord(f"kommKz must be one of {sorted(KOMM_KZ)}")
    if not body.get("tlf"):
        raise InvalidRecord("tlf (the number or address) is required")
    return kind


def _day(value: str | None) -> date | None:
    return datetime.fromisoformat(value).date() if value else None


class AdvowareStore:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.termine: dict[int, dict[str, Any]] = {}
        self.mitarbeiter: list[dict[str, Any]] = []
        self.beteiligte: dict[int, dict[str, Any]] = {}
        self.kommunikationen: dict[int, dict[int, dict[str, Any]]] = {}  # betNr -> id -> record
        self._last_stamp = datetime.min
        self._next_frnr = 1
        self._next_betnr = 1
        self._next_komm_id = 1
        self._row_version = 0

    # -- stamps ---------------------------------------------------------------------------------
    def _stamp(self) -> str:
        now = datetime.now(BERLIN).replace(tzinfo=None)
        if now <= self._last_stamp:
            now = self._last_stamp + timedelta(microseconds=1)
        self._last_stamp = now
        return fmt_stamp(now)

    def _observe_stamp(self, value: Any) -> None:
        # Seeded stamps may lie ahead of the clock: later writes must still move past them.
        try:
            self._last_stamp = max(self._last_stamp, datetime.fromisoformat(str(value)).replace(tzinfo=None))
        except ValueError:
            pass

    def _row_id(self) -> str:
        self._row_version += 1  # like SQL Server's rowversion: 8 bytes, base64
        return base64.b64encode(self._row_version.to_bytes(8, "big")).decode()

    # -- Termine --------------------------------------------------------------------------------
    def _normalise_termin(self, record: dict[str, Any]) -> dict[str, Any]:
        if not record.get("datum"):
            raise InvalidRecord("datum is required")
        begin = _local(record["datum"], "datum")
        record["datum"] = fmt_dt(begin)
        record["uhrzeitVon"] = record.get("uhrzeitVon") or begin.strftime("%H:%M:%S")
        if record.get("datumBis"):
            end = _local(record["datumBis"], "datumBis")
            record["datumBis"] = fmt_dt(end)
            record["uhrzeitBis"] = record.get("uhrzeitBis") or end.strftime("%H:%M:%S")
        if record.get("erinnerungsDatum"):
            record["erinnerungsDatum"] = fmt_dt(_local(record["erinnerungsDatum"], "erinnerungsDatum"))
        for name in _INT_FIELDS:
            try:
                record[name] = int(record.get(name) or 0)
            except (TypeError, ValueError):
                raise InvalidRecord(f"{name} must be an integer") from None
        if not record.get("kuerzel") and record.get("anwalt"):
            record["kuerzel"] = record["anwalt"]
        record["anwalt"] = record.get("anwalt") or record.get("kuerzel") or ""
        return {name: record.get(name) for name in TERMIN_FIELDS}

    def list_termine(self, kuerzel: str | None, since: date | None, until: date | None) -> list[dict[str, Any]]:
        """Every appointment of `kuerzel` (case-insensitive) overlapping [since, until]; a series
        counts from its `datum` to its series end `datumBis`."""
        found = []
        for record in self.termine.values():
            if kuerzel is not None and str(record.get("kuerzel") or "").upper() != kuerzel.upper():
                continue
            first = _day(record["datum"])
            last = _day(record.get("datumBis")) or first
            assert first is not None and last is not None
            last = max(first, last)
            if (until is not None and first > until) or (since is not None and last < since):
                continue
            found.append(dict(record))
        return found

    def get_termin(self, frnr: int) -> dict[str, Any] | None:
        record = self.termine.get(frnr)
        return dict(record) if record else None

    def add_termin(self, body: dict[str, Any], *, keep_frnr: bool) -> dict[str, Any]:
        record = {**_TERMIN_DEFAULTS, **{k: v for k, v in body.items() if k in TERMIN_FIELDS}}
        record = self._normalise_termin(record)
        frnr = body.get("frNr") if keep_frnr else None
        if frnr is None:
            frnr = self._next_frnr
        record["frNr"] = int(frnr)
        self._next_frnr = max(self._next_frnr, record["frNr"] + 1)
        if keep_frnr and body.get("zuletztGeaendertAm"):
            record["zuletztGeaendertAm"] = body["zuletztGeaendertAm"]
            self._observe_stamp(body["zuletztGeaendertAm"])
        else:
            record["zuletztGeaendertAm"] = self._stamp()
        self.termine[record["frNr"]] = record
        return dict(record)

    def update_termin(self, frnr: int, body: dict[str, Any]) -> dict[str, Any] | None:
        """Merge the known fields of `body` into the record (frNr and the stamp are not writable)."""
        current = self.termine.get(frnr)
        if current is None:
            return None
        fixed = ("frNr", "zuletztGeaendertAm")
        changes = {k: v for k, v in body.items() if k in TERMIN_FIELDS and k not in fixed}
        record = self._normalise_termin({**current, **changes})
        record["frNr"] = frnr
        record["zuletztGeaendertAm"] = self._stamp()
        self.termine[frnr] = record
        return dict(record)

    def delete_termin(self, frnr: int) -> bool:
        return self.termine.pop(frnr, None) is not None

    # -- Beteiligte -----------------------------------------------------------------------------
    def _with_komm(self, record: dict[str, Any]) -> dict[str, Any]:
        return {**record, "kommunikation": [dict(k) for k in self.kommunikationen[record["betNr"]].values()]}

    def list_beteiligte(self, name: str | None) -> list[dict[str, Any]]:
        needle = name.lower() if name else None
        return [
            self._with_komm(r)
            for r in self.beteiligte.values()
            if needle is None or needle in str(r.get("name") or "").lower()
        ]

    def get_beteiligter(self, bet_nr: int) -> dict[str, Any] | None:
        record = self.beteiligte.get(bet_nr)
        return self._with_komm(record) if record else None

    def add_beteiligter(self, body: dict[str, Any], *, keep_betnr: bool = False) -> dict[str, Any]:
        if not body.get("name"):
            raise InvalidRecord("name is required")
        for komm in body.get("kommunikation") or []:
            _check_komm(komm)  # all or nothing
        bet_nr = int(body["betNr"]) if keep_betnr and body.get("betNr") is not None else self._next_betnr
        self._next_betnr = max(self._next_betnr, bet_nr + 1)
        record = {name: body.get(name) for name in BETEILIGTE_FIELDS}
        record.update(betNr=bet_nr, rowId=self._row_id(), geaendertAm=self._stamp())
        self.beteiligte[bet_nr] = record
        self.kommunikationen[bet_nr] = {}
        for komm in body.get("kommunikation") or []:
            self.add_kommunikation(bet_nr, komm)
        return self._with_komm(record)

    def update_beteiligter(self, bet_nr: int, body: dict[str, Any]) -> dict[str, Any] | None:
        record = self.beteiligte.get(bet_nr)
        if record is None:
            return None
        if body.get("rowId") is not None and body["rowId"] != record["rowId"]:
            raise StaleRowId(record["rowId"])
        if "name" in body and not body["name"]:
            raise InvalidRecord("name must not be empty")
        record.update({k: v for k, v in body.items() if k in BETEILIGTE_FIELDS})
        record.update(rowId=self._row_id(), geaendertAm=self._stamp())
        return self._with_komm(record)

    def delete_beteiligter(self, bet_nr: int) -> bool:
        self.kommunikationen.pop(bet_nr, None)
        return self.beteiligte.pop(bet_nr, None) is not None

    # -- Kommunikationen (writes here do not move the party's rowId / geaendertAm) --------------
    def list_kommunikationen(self, bet_nr: int) -> list[dict[str, Any]] | None:
        if bet_nr not in self.beteiligte:
            return None
        return [dict(k) for k in self.kommunikationen[bet_nr].values()]

    def add_kommunikation(self, bet_nr: int, body: dict[str, Any]) -> dict[str, Any]:
        kind = _check_komm(body)
        komm_id = self._next_komm_id
        record = {
            "id": komm_id,
            "kommKz": kind,
            "tlf": str(body["tlf"]),
            "bemerkung": body.get("bemerkung"),
            "online": bool(body.get("online", False)),
        }
        self._next_komm_id += 1
        self.kommunikationen[bet_nr][komm_id] = record
        return dict(record)

    def update_kommunikation(self, bet_nr: int, komm_id: int, body: dict[str, Any]) -> dict[str, Any] | None:
        record = self.kommunikationen.get(bet_nr, {}).get(komm_id)
        if record is None:
            return None
        if "tlf" in body and not body["tlf"]:
            raise InvalidRecord("tlf must not be empty")
        record.update({k: v for k, v in body.items() if k in KOMM_FIELDS})  # kommKz is read-only
        return dict(record)

    # -- admin ----------------------------------------------------------------------------------
    def seed(self, body: dict[str, Any]) -> dict[str, Any]:
        """Load a generated firm ("seed" given: replaces Mitarbeiter and Termine) and/or append the
        explicit "mitarbeiter", "termine", "beteiligte" lists."""
        if body.get("seed") is not None:
            start = date.fromisoformat(body["start"]) if body.get("start") else None
            firm = generate_firm(
                int(body["seed"]),
                employees=int(body.get("employees", 10)),
                appointments_per_employee=int(body.get("appointments_per_employee", 30)),
                parties=0,
                start=start,
            )
            self.mitarbeiter = []
            self.termine = {}
            body = {
                **body,
                "mitarbeiter": firm.employees + list(body.get("mitarbeiter") or []),
                "termine": firm.appointments + list(body.get("termine") or []),
            }
        known = {m.get("kuerzel") for m in self.mitarbeiter}
        for employee in body.get("mitarbeiter") or []:
            code = employee.get("kuerzel")
            if code in known:  # same kuerzel: the newer record wins
                self.mitarbeiter = [m for m in self.mitarbeiter if m.get("kuerzel") != code]
            self.mitarbeiter.append(dict(employee))
            known.add(code)
        for termin in body.get("termine") or []:
            self.add_termin(termin, keep_frnr=True)
        for party in body.get("beteiligte") or []:
            self.add_beteiligter(party, keep_betnr=True)
        return self.counts()

    def counts(self) -> dict[str, int]:
        return {"termine": len(self.termine), "mitarbeiter": len(self.mitarbeiter), "beteiligte": len(self.beteiligte)}

    def dump(self) -> dict[str, Any]:
        return {
            "termine": [dict(t) for t in self.termine.values()],
            "mitarbeiter": [dict(m) for m in self.mitarbeiter],
            "beteiligte": [self._with_komm(b) for b in self.beteiligte.values()],
        }
