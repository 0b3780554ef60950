"""What the Calendar sandbox stores: a calendar with its ACL rules and events, and the ACL roles.

Its own module so that the store and the sharing rules on top of it both import it, and neither
the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import event_model as em

ROLES = ("none", "freeBusyReader", "reader", "writerWithoutPrivateAccess", "writer", "owner")
RANK = {role: i for i, role in enumerate(ROLES)}
NEED = {"read": RANK["reader"], "write": RANK["writerWithoutPrivateAccess"], "owner": RANK["owner"]}
SCOPE_TYPES = ("default", "user", "group", "domain")


@dataclass
class StoredEvent:
    res: dict[str, Any]
    order: int
    seq: int
    start: em.When
    end: em.When
    original: em.When | None = None  # an exception's originalStartTime
    # an exception Google removed itself (its master was deleted, or a timing change dropped it):
    # a deleted record (cancelled in incremental and showDeleted listings), no longer an exception
    removed: bool = False

    @property
    def is_exception(self) -> bool:
        return "recurringEventId" in self.res

    @property
    def is_master(self) -> bool:
        return bool(self.res.get("recurrence")) and not self.is_exception


@dataclass
class Calendar:
    id: str
    summary: str
    owner: str
    time_zone: str
    etag: str
    description: str | None = None
    location: str | None = None
    acl: dict[str, dict[str, Any]] = field(default_factory=dict)
    events: dict[str, StoredEvent] = field(default_factory=dict)

    def resource(self) -> dict[str, Any]:
        res: dict[str, Any] = {
            "kind": "calendar#calendar",
            "etag": self.etag,
            "id": self.id,
            "summary": self.summary,
            "timeZone": self.time_zone,
            "conferenceProperties": {"allowedConferenceSolutionTypes": ["hangoutsMeet"]},
        }
        if self.description is not None:
            res["description"] = self.description
        if self.location is not None:
            res["location"] = self.location
        return res
