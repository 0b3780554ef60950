"""A deterministic, fake German law firm: employees, appointments (Advoware) and parties (EspoCRM).

`generate_firm(seed, start=...)` always yields the same firm for the same (seed, start, sizes):
everything is drawn from one `random.Random(seed)` and every date is relative to `start`, never to
the wall clock (only the default `start` is today). The data is fake but shaped like production:

- employees: Advoware Mitarbeiter {kuerzel, vorname, name, email, aktiv}; one inactive from 5 on.
- appointments: Advoware Termine with exactly Advoware's camelCase fields (docs/external-apis.md), spread from
  start-20 to start+300 days. Every employee gets the special kinds the sync must handle (see
  `SPECIAL_KINDS`): a daily, a weekly (its series end crosses a DST change), an open-ended monthly
  (datumBis in 2037) and a yearly series, a single and a multi-day all-day absence, a private one
  and one special with a negative frNr. The rest are ordinary timed appointments. A few more
  belong to the shared pool (kuerzel '', 'ALLE', 'Allgemein').
- parties: EspoCRM CBeteiligte records (persons and companies).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

BERLIN = ZoneInfo("Europe/Berlin")
OPEN_END = date(2037, 12, 31)  # Advoware stores open-ended series with year 2037
WINDOW_BEFORE_DAYS = 20
WINDOW_AFTER_DAYS = 300
SHARED_POOL = ("", "ALLE", "Allgemein")

# Kinds every employee gets (in this order) before the ordinary appointments.
SPECIAL_KINDS = ("daily", "weekly_dst", "monthly_open", "yearly", "allday", "allday_multi", "private", "negative")

TERMIN_FIELDS = (
    "frNr",
    "text",
    "notiz",
    "ort",
    "kuerzel",
    "anwalt",
    "datum",
    "uhrzeitVon",
    "datumBis",
    "uhrzeitBis",
    "abwesenheit",
    "privat",
    "dauertermin",
    "turnus",
    "turnusArt",
    "erinnerung",
    "erinnerungsDatum",
    "nr",
    "azRubrum",
    "zuletztGeaendertAm",
)

_FIRST_NAMES = (
    "Anna",
    "Lukas",
    "Sophie",
    "Jonas",
    "Marie",
    "Felix",
    "Lena",
    "Paul",
    "Clara",
    "Maximilian",
    "Hannah",
    "Leon",
    "Emilia",
    "Niklas",
    "Johanna",
    "Moritz",
    "Katharina",
    "Tobias",
    "Greta",
    "Florian",
    "Ida",
    "Sebastian",
    "Charlotte",
    "Matthias",
    "Frieda",
    "Jan",
    "Luise",
    "Stefan",
)
_LAST_NAMES = (
    "Müller",
    "Schmidt",
    "Schneider",
    "Fischer",
    "Weber",
    "Meyer",
    "Wagner",
    "Becker",
    "Schulz",
    "Hoffmann",
    "Schäfer",
    "Koch",
    "Bauer",
    "Richter",
    "Klein",
    "Wolf",
    "Schröder",
    "Neumann",
    "Schwarz",
    "Zimmermann",
    "Braun",
    "Krüger",
    "Hofmann",
    "Hartmann",
    "Lange",
    "Schmitt",
    "Werner",
    "Krause",
    "Meier",
    "Lehmann",
    "Köhler",
    "Herrmann",
    "König",
    "Walter",
    "Peters",
)
_COMPANY_STEMS = (
    "Nordlicht",
    "Rheinblick",
    "Alpenland",
    "Hansekontor",
    "Lindenhof",
    "Eichenwerk",
    "Sonnenfeld",
    "Mühlbach",
    "Bergmann",
    "Weserstahl",
    "Elbtal",
    "Isarwerk",
    "Spreepark",
    "Taunusbau",
    "Havelsand",
    "Mainufer",
)
_COMPANY_TRADES = (
    "Bau",
    "Logistik",
    "Immobilien",
    "Handel",
    "Software",
    "Maschinenbau",
    "Gastronomie",
    "Energie",
    "Verlag",
    "Transport",
)
_RECHTSFORMEN = ("GmbH", "AG", "KG", "GmbH & Co. KG", "UG (haftungsbeschränkt)", "e.K.", "GbR")
_STREETS = (
    "Hauptstraße",
    "Bahnhofstraße",
    "Gartenweg",
    "Schillerstraße",
    "Goethestraße",
    "Lindenallee",
    "Am Markt",
    "Kirchgasse",
    "Bergstraße",
    "Rosenweg",
    "Industriestraße",
    "Hafenstraße",
)
_CITIES = (
    ("10115", "Berlin"),
    ("20095", "Hamburg"),
    ("80331", "München"),
    ("50667", "Köln"),
    ("60311", "Frankfurt am Main"),
    ("70173", "Stuttgart"),
    ("40213", "Düsseldorf"),
    ("04109", "Leipzig"),
    ("28195", "Bremen"),
    ("01067", "Dresden"),
    ("90402", "Nürnberg"),
)
_COURTS = (
    "Amtsgericht Charlottenburg",
    "Amtsgericht Hamburg",
    "Amtsgericht München",
    "Amtsgericht Köln",
    "Amtsgericht Frankfurt am Main",
)
_MEETING_TEXTS = (
    "Mandantengespräch",
    "Besprechung",
    "Telefonkonferenz",
    "Akteneinsicht",
    "Vergleichsgespräch",
    "Verhandlung",
    "Ortstermin",
    "Beweisaufnahme",
    "Gütetermin",
    "Schriftsatz abstimmen",
    "Fristbesprechung",
    "Beratung",
)
_PLACES = (
    "Kanzlei, Besprechungsraum 1",
    "Kanzlei, Besprechungsraum 2",
    "Landgericht, Saal 114",
    "Amtsgericht, Saal 3",
    "Arbeitsgericht, Saal 2.07",
    "Oberlandesgericht, Saal E 21",
    "Videokonferenz",
    "beim Mandanten",
    "",
)
_PRIVATE_TEXTS = ("Arzttermin", "Elternabend", "Zahnarzt", "Handwerker zu Hause", "Sport")
_ABSENCE_TEXTS = ("Fortbildung", "Homeoffice", "Seminar Fachanwaltskurs", "Krank")
_VACATION_TEXTS = ("Urlaub", "Fachanwaltslehrgang", "Dienstreise")
_NEGATIVE_TEXTS = ("Vorfrist", "Reisezeit", "Feiertag")
_SHARED_TEXTS = (
    "Kanzleibesprechung",
    "Teamfrühstück",
    "Betriebsausflug",
    "Brandschutzübung",
    "Weihnachtsfeier",
    "Softwareschulung",
)


@dataclass
class Firm:
    seed: int
    start: date
    employees: list[dict[str, Any]] = field(default_factory=list)
    appointments: list[dict[str, Any]] = field(default_factory=list)
    parties: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "start": self.start.isoformat(),
            "employees": self.employees,
            "appointments": self.appointments,
            "parties": self.parties,
        }

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), ensure_ascii=False, sort_keys=True)


# -- formatting helpers --------------------------------------------------------------------------
def fmt_dt(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S")


def fmt_stamp(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S.%f")


def _utc_offset(day: date) -> timedelta:
    offset = datetime.combine(day, time(12), BERLIN).utcoffset()
    assert offset is not None
    return offset


def next_dst_change(after: date) -> date:
    """The first day after `after` whose Berlin UTC offset differs from the day before."""
    day = after + timedelta(days=1)
    for _ in range(400):
        if _utc_offset(day) != _utc_offset(day - timedelta(days=1)):
            return day
        day += timedelta(days=1)
    raise ValueError("no DST change within 400 days")  # pragma: no cover - Europe/Berlin has two a year


# -- employees -----------------------------------------------------------------------------------
_ASCII = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "Ä": "AE", "Ö": "OE", "Ü": "UE", "ß": "ss"})


def _kuerzel(vorname: str, name: str, taken: set[str], rng: random.Random) -> str:
    first, last = vorname.translate(_ASCII).upper(), name.translate(_ASCII).upper()
    for code in (first[0] + last[0], first[0] + last[:2], first[:2] + last[:2]):
        if code not in taken:
            return code
    pool = first + last
    while True:  # all natural codes taken: random letters of the name
        code = "".join(rng.choice(pool) for _ in range(rng.randint(3, 4)))
        if code not in taken:
            return code


def _employees(rng: random.Random, count: int) -> list[dict[str, Any]]:
    employees: list[dict[str, Any]] = []
    taken: set[str] = set()
    for i in range(count):
        vorname, name = rng.choice(_FIRST_NAMES), rng.choice(_LAST_NAMES)
        code = _kuerzel(vorname, name, taken, rng)
        taken.add(code)
        employees.append(
            {
                "kuerzel": code,
                "vorname": vorname,
                "name": name,
                "email": f"{code.lower()}@kanzlei.example",
                "aktiv": not (count >= 5 and i == count - 1),
            }
        )
    return employees


# -- appointments --------------------------------------------------------------------------------
class _TerminFactory:
    def __init__(self, rng: random.Random, start: date) -> None:
        self.rng = rng
        self.start = start
        self.lo = start - timedelta(days=WINDOW_BEFORE_DAYS)
        self.hi = start + timedelta(days=WINDOW_AFTER_DAYS)
        self._next_frnr = 10_000 + rng.randint(0, 9_000)
        self._next_negative = -1
        self.matters = [(50_000 + i, self._rubrum()) for i in range(rng.randint(12, 20))]

    def _rubrum(self) -> str:
        left = f"{self.rng.choice(_LAST_NAMES)}"
        if self.rng.random() < 0.5:
            right = (
                f"{self.rng.choice(_COMPANY_STEMS)} {self.rng.choice(_COMPANY_TRADES)} {self.rng.choice(_RECHTSFORMEN)}"
            )
        else:
            right = self.rng.choice(_LAST_NAMES)
        return f"{left} ./. {right}"

    def day(self, lo: int = -WINDOW_BEFORE_DAYS, hi: int = WINDOW_AFTER_DAYS) -> date:
        return self.start + timedelta(days=self.rng.randint(lo, hi))

    def slot(self) -> tuple[time, time]:
        begin = self.rng.randint(8 * 4, 17 * 4)  # quarter hours, 08:00 .. 17:00
        length = self.rng.choice((2, 2, 4, 4, 4, 6, 8))
        end = min(begin + length, 23 * 4)
        return time(begin // 4, (begin % 4) * 15), time(end // 4, (end % 4) * 15)

    def stamp(self) -> str:
        moment = datetime.combine(self.start, time(0)) - timedelta(
            days=self.rng.randint(1, 400),
            seconds=self.rng.randint(0, 86_399),
            microseconds=self.rng.randint(0, 999_999),
        )
        return fmt_stamp(moment)

    def termin(
        self,
        *,
        kuerzel: str,
        text: str,
        day: date,
        von: time,
        end_day: date,
        bis: time,
        abwesenheit: int = 0,
        privat: int = 0,
        series: tuple[int, int, date] | None = None,
        negative: bool = False,
        matter: bool | None = None,
    ) -> dict[str, Any]:
        if negative:
            frnr, self._next_negative = self._next_negative, self._next_negative - 1
        else:
            frnr = self._next_frnr
            self._next_frnr += self.rng.randint(1, 3)  # ids have gaps, as after deletions
        begin = datetime.combine(day, von)
        if matter is None:
            matter = self.rng.random() < 0.6
        nr, rubrum = self.rng.choice(self.matters) if matter else (None, "")
        reminder = 0 if abwesenheit else int(self.rng.random() < 0.4)
        dauertermin, turnus, turnus_art = (0, 0, 0)
        if series is not None:
            turnus, turnus_art, end_day = series
            dauertermin = 1
        return {
            "frNr": frnr,
            "text": f"{text}: {rubrum}" if rubrum else text,
            "notiz": self.rng.choice(
                (
                    "",
                    "Unterlagen mitbringen",
                    "Mandant kommt mit Begleitung",
                    "Vollmacht prüfen",
                    "Rückruf erbeten",
                    "Akte vorher lesen",
                )
            ),
            "ort": "" if abwesenheit or privat else self.rng.choice(_PLACES),
            "kuerzel": kuerzel,
            "anwalt": kuerzel,
            "datum": fmt_dt(begin),
            "uhrzeitVon": von.strftime("%H:%M:%S"),
            "datumBis": fmt_dt(datetime.combine(end_day, bis)),
            "uhrzeitBis": bis.strftime("%H:%M:%S"),
            "abwesenheit": abwesenheit,
            "privat": privat,
            "dauertermin": dauertermin,
            "turnus": turnus,
            "turnusArt": turnus_art,
            "erinnerung": reminder,
            "erinnerungsDatum": fmt_dt(begin - timedelta(minutes=self.rng.choice((15, 30, 60)))) if reminder else None,
            "nr": nr,
            "azRubrum": rubrum,
            "zuletztGeaendertAm": self.stamp(),
        }

    # one builder per special kind
    def special(self, kind: str, kuerzel: str) -> dict[str, Any]:
        rng = self.rng
        von, bis = self.slot()
        allday = (time(0), time(23, 59))
        if kind == "daily":
            day = self.day(-10, 250)
            until = day + timedelta(days=rng.randint(10, 40))
            return self.termin(
                kuerzel=kuerzel,
                text="Fristenkontrolle",
                day=day,
                von=von,
                end_day=day,
                bis=bis,
                series=(rng.choice((1, 1, 3)), 1, until),
                matter=False,
            )
        if kind == "weekly_dst":
            change = next_dst_change(self.lo)
            day = change - timedelta(days=min(rng.randint(7, 35), (change - self.lo).days))
            until = change + timedelta(days=rng.randint(14, 60))
            return self.termin(
                kuerzel=kuerzel,
                text="Jour fixe",
                day=day,
                von=von,
                end_day=day,
                bis=bis,
                series=(rng.choice((1, 1, 2)), 2, until),
                matter=False,
            )
        if kind == "monthly_open":
            day = self.start + timedelta(days=rng.randint(-20, 60))
            day = day.replace(day=min(day.day, 28))
            return self.termin(
                kuerzel=kuerzel,
                text="Monatsabschluss Gebühren",
                day=day,
                von=von,
                end_day=day,
                bis=bis,
                series=(1, 3, OPEN_END),
                matter=False,
            )
        if kind == "yearly":
            day = self.day(-20, 200)
            until = day.replace(year=day.year + rng.randint(3, 6), day=min(day.day, 28))
            return self.termin(
                kuerzel=kuerzel,
                text="Jahresgespräch",
                day=day,
                von=von,
                end_day=day,
                bis=bis,
                series=(1, 4, until),
                matter=False,
            )
        if kind == "allday":
            day = self.day()
            return self.termin(
                kuerzel=kuerzel,
                text=rng.choice(_ABSENCE_TEXTS),
                day=day,
                von=allday[0],
                end_day=day,
                bis=allday[1],
                abwesenheit=1,
                matter=False,
            )
        if kind == "allday_multi":
            day = self.day(-5, 280)
            return self.termin(
                kuerzel=kuerzel,
                text=rng.choice(_VACATION_TEXTS),
                day=day,
                von=allday[0],
                end_day=day + timedelta(days=rng.randint(2, 14)),
                bis=allday[1],
                abwesenheit=1,
                matter=False,
            )
        if kind == "private":
            day = self.day()
            return self.termin(
                kuerzel=kuerzel,
                text=rng.choice(_PRIVATE_TEXTS),
                day=day,
                von=von,
                end_day=day,
                bis=bis,
                privat=1,
                matter=False,
            )
        if kind == "negative":
            day = self.day()
            text = rng.choice(_NEGATIVE_TEXTS)
            if text == "Reisezeit":
                return self.termin(kuerzel=kuerzel, text=text, day=day, von=von, end_day=day, bis=bis, negative=True)
            return self.termin(
                kuerzel=kuerzel,
                text=text,
                day=day,
                von=allday[0],
                end_day=day,
                bis=allday[1],
                abwesenheit=1,
                negative=True,
                matter=text == "Vorfrist",
            )
        raise ValueError(f"unknown special kind {kind!r}")

    def ordinary(self, kuerzel: str) -> dict[str, Any]:
        von, bis = self.slot()
        day = self.day()
        privat = int(self.rng.random() < 0.05)
        return self.termin(
            kuerzel=kuerzel,
            text=self.rng.choice(_MEETING_TEXTS),
            day=day,
            von=von,
            end_day=day,
            bis=bis,
            privat=privat,
            matter=None if not privat else False,
        )

    def shared(self, kuerzel: str) -> dict[str, Any]:
        von, bis = self.slot()
        day = self.day()
        return self.termin(
            kuerzel=kuerzel, text=self.rng.choice(_SHARED_TEXTS), day=day, von=von, end_day=day, bis=bis, matter=False
        )


# -- parties -------------------------------------------------------------------------------------
def _espo_ts(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _party(rng: random.Random, start: date) -> dict[str, Any]:
    plz, ort = rng.choice(_CITIES)
    created = datetime.combine(start, time(0)) - timedelta(days=rng.randint(30, 2000), seconds=rng.randint(0, 86_399))
    modified = created + timedelta(days=rng.randint(0, 25), seconds=rng.randint(0, 86_399))
    record: dict[str, Any] = {
        "id": "".join(rng.choice("0123456789abcdef") for _ in range(17)),
        "strasse": f"{rng.choice(_STREETS)} {rng.randint(1, 180)}",
        "plz": plz,
        "ort": ort,
        "land": "Deutschland",
        "createdAt": _espo_ts(created),
        "modifiedAt": _espo_ts(modified),
        "versionNumber": 1,
    }
    if rng.random() < 0.7:  # a person
        female = rng.random() < 0.5
        vorname, name = rng.choice(_FIRST_NAMES), rng.choice(_LAST_NAMES)
        birthday = date(rng.randint(1940, 2004), rng.randint(1, 12), rng.randint(1, 28))
        mail_local = f"{vorname}.{name}".lower().translate(_ASCII)
        record.update(
            {
                "name": name,
                "vorname": vorname,
                "anrede": "Frau" if female else "Herr",
                "titel": rng.choice((None, None, None, None, "Dr.", "Prof. Dr.")),
                "rechtsform": "Natürliche Person",
                "geburtsdatum": birthday.isoformat() if rng.random() < 0.8 else None,
                "handelsregisterNummer": None,
                "registergericht": None,
                "emailAddress": f"{mail_local}@mail.example",
                "phoneNumber": f"+49 {rng.randint(151, 179)} {rng.randint(1_000_000, 9_999_999)}",
            }
        )
    else:
        form = rng.choice(_RECHTSFORMEN)
        stem, trade = rng.choice(_COMPANY_STEMS), rng.choice(_COMPANY_TRADES)
        record.update(
            {
                "name": f"{stem} {trade} {form}",
                "vorname": None,
                "anrede": "Firma",
                "titel": None,
                "rechtsform": form,
                "geburtsdatum": None,
                "handelsregisterNummer": f"HRB {rng.randint(10_000, 199_999)}" if form != "GbR" else None,
                "registergericht": rng.choice(_COURTS) if form != "GbR" else None,
                "emailAddress": f"info@{stem.lower()}-{trade.lower()}.example",
                "phoneNumber": f"+49 {rng.randint(30, 899)} {rng.randint(100_000, 9_999_999)}",
            }
        )
    return record


# -- the firm ------------------------------------------------------------------------------------
def generate_firm(
    seed: int, employees: int = 10, appointments_per_employee: int = 30, parties: int = 50, start: date | None = None
) -> Firm:
    """A firm that depends only on the arguments. Each employee gets max(appointments_per_employee,
    len(SPECIAL_KINDS)) appointments: the special kinds always, then ordinary ones."""
    start = start or date.today()
    rng = random.Random(seed)
    staff = _employees(rng, employees)
    factory = _TerminFactory(rng, start)
    appointments: list[dict[str, Any]] = []
    for employee in staff:
        code = employee["kuerzel"]
        for kind in SPECIAL_KINDS:
            appointments.append(factory.special(kind, code))
        for _ in range(appointments_per_employee - len(SPECIAL_KINDS)):
            appointments.append(factory.ordinary(code))
    for i in range(max(len(SHARED_POOL), employees // 2)):
        appointments.append(factory.shared(SHARED_POOL[i % len(SHARED_POOL)]))
    party_records = [_party(rng, start) for _ in range(parties)]
    return Firm(seed=seed, start=start, employees=staff, appointments=appointments, parties=party_records)
