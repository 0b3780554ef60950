"""The fields of an Advoware party (Beteiligte) that this project reads and writes.

The party sync owns exactly these (`include.parties.mapping`) and the Advoware sandbox stores exactly
these: one list, so a field the sync starts to write is one the sandbox keeps.
"""

BETEILIGTE_FIELDS = (
    "name",
    "vorname",
    "anrede",
    "titel",
    "rechtsform",
    "geburtsdatum",
    "handelsregisterNummer",
    "registergericht",
    "strasse",
    "plz",
    "ort",
    "land",
)
