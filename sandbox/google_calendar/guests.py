"""What Google does around an event's guests and add-ons, as the Events reference describes it.

- **Mails** (`MailLog`): a write with `sendUpdates=all` (or the deprecated `sendNotifications=true`
  when `sendUpdates` is absent) mails every guest; `externalOnly` only guests without a Google
  Calendar (here: an address that is no account of this sandbox); `none`, or neither parameter, no
  one. Guests are the attendees other than the organizer, the acting user and resources. Insert:
  an invitation; update/patch: an update to the guests before and after the write; delete: a
  cancellation. `acl.insert` mails the new reader unless `sendNotifications=false` (its default is
  true). Nothing is sent anywhere: the sandbox only counts what Google would have sent.
- **conferenceData** is read from a write's body only with `conferenceDataVersion=1` ("Version 0
  assumes no conference data support and ignores conference data in the event's body"): with 0 an
  update keeps the stored conference whatever the body says. With 1 a PUT without it removes it, and
  a `createRequest` makes a Meet conference (status success). `hangoutLink` (read-only) follows it.
- **attachments** are changed only with `supportsAttachments=true`, otherwise the stored ones stay.
- **source** "can only be seen or modified by the creator of the event": hidden from everyone else,
  and their writes keep the stored one.
"""

from __future__ import annotations

import copy
import secrets
import string
from dataclasses import asdict, dataclass, field
from typing import Any

from .errors import bad_param

MEET = "hangoutsMeet"


@dataclass(frozen=True)
class Mail:
    kind: str  # invitation | update | cancellation | calendar_shared
    principal: str  # who wrote
    calendar_id: str
    event_id: str | None
    to: tuple[str, ...]


@dataclass
class MailLog:
    mails: list[Mail] = field(default_factory=list)

    def add(self, mail: Mail) -> None:
        if mail.to:
            self.mails.append(mail)

    def state(self) -> dict[str, Any]:
        by_kind: dict[str, int] = {}
        for m in self.mails:
            by_kind[m.kind] = by_kind.get(m.kind, 0) + len(m.to)
        return {
            "count": sum(by_kind.values()),
            "by_kind": by_kind,
            "mails": [asdict(m) | {"to": list(m.to)} for m in self.mails],
        }


def _flag(params: dict[str, Any], name: str) -> bool:
    return str(params.get(name, "")).lower() == "true"


def mail_mode(params: dict[str, Any]) -> str:
    if params.get("sendUpdates"):
        return str(params["sendUpdates"])
    return "all" if _flag(params, "sendNotifications") else "none"


def conference_version(params: dict[str, Any]) -> int:
    raw = params.get("conferenceDataVersion")
    if raw in (None, ""):
        return 0
    if str(raw) not in ("0", "1"):
        raise bad_param(
            "conferenceDataVersion",
            f"Invalid value '{raw}'. Values must be within the range: [0, 1]",
            "invalidParameter",
        )
    return int(raw)


def guests(res: dict[str, Any] | None, *, principal: str, calendar_id: str) -> set[str]:
    """Addresses a mail about this event would go to (no organizer, no self, no resource)."""
    out: set[str] = set()
    for a in (res or {}).get("attendees") or []:
        if not isinstance(a, dict) or not a.get("email") or a.get("organizer") or a.get("resource"):
            continue
        email = str(a["email"]).lower()
        if email not in (principal.lower(), calendar_id.lower()):
            out.add(email)
    return out


def _new_meet(request: dict[str, Any]) -> dict[str, Any]:
    letters = string.ascii_lowercase
    code = "-".join("".join(secrets.choice(letters) for _ in range(n)) for n in (3, 4, 3))
    return {
        "createRequest": {**request, "status": {"statusCode": "success"}},
        "entryPoints": [
            {"entryPointType": "video", "uri": f"https://meet.google.com/{code}", "label": f"meet.google.com/{code}"}
        ],
        "conferenceSolution": {"key": {"type": MEET}, "name": "Google Meet"},
        "conferenceId": code,
    }


def _conference(value: Any) -> Any:
    """A conference as stored: a pending createRequest becomes a Meet conference."""
    if isinstance(value, dict) and isinstance(value.get("createRequest"), dict) and not value.get("conferenceId"):
        return _new_meet(value["createRequest"])
    return copy.deepcopy(value)


def hangout_link(res: dict[str, Any]) -> str | None:
    conf = res.get("conferenceData") or {}
    if ((conf.get("conferenceSolution") or {}).get("key") or {}).get("type") != MEET:
        return None
    for entry in conf.get("entryPoints") or []:
        if isinstance(entry, dict) and entry.get("entryPointType") == "video" and entry.get("uri"):
            return str(entry["uri"])
    return None


def _creator(res: dict[str, Any] | None) -> str | None:
    return ((res or {}).get("creator") or {}).get("email")


def _keep(body: dict[str, Any], name: str, current: dict[str, Any] | None) -> None:
    """A PUT that may not change `name`: the stored value stays (or stays absent)."""
    if current is not None and name in current:
        body[name] = copy.deepcopy(current[name])
    else:
        body.pop(name, None)


def restrict(endpoint: str, body: Any, current: dict[str, Any] | None, params: dict[str, Any], principal: str) -> Any:
    """The body as Google applies it: the parts this request may not change replaced by the stored
    ones (update), or left out (insert, patch)."""
    version = conference_version(params)
    if not isinstance(body, dict) or endpoint not in ("events.insert", "events.update", "events.patch"):
        return body
    body = dict(body)
    put = endpoint == "events.update"
    creator = _creator(current)
    rules = {
        "conferenceData": version == 1,
        "attachments": _flag(params, "supportsAttachments"),
        "source": endpoint == "events.insert" or creator is None or creator == principal,
    }
    for name, allowed in rules.items():
        if allowed:
            continue
        if put:
            _keep(body, name, current)
        else:
            body.pop(name, None)
    if version == 1 and "conferenceData" in body:
        body["conferenceData"] = _conference(body["conferenceData"])
    return body


def derive(res: dict[str, Any]) -> None:
    """The read-only fields that follow from the stored ones."""
    link = hangout_link(res)
    if link:
        res["hangoutLink"] = link
    else:
        res.pop("hangoutLink", None)


def visible(result: Any, principal: str) -> Any:
    """An answer as `principal` sees it: another creator's `source` left out."""
    if not isinstance(result, dict):
        return result
    if result.get("kind") == "calendar#events":
        return {**result, "items": [visible(item, principal) for item in result.get("items") or []]}
    if result.get("kind") == "calendar#event" and "source" in result and _creator(result) not in (None, principal):
        return {k: v for k, v in result.items() if k != "source"}
    return result


def notify(
    log: MailLog,
    endpoint: str,
    params: dict[str, Any],
    *,
    principal: str,
    calendar_id: str,
    event_id: str | None,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    is_google_user: Any,
) -> None:
    """Count the mails Google would send for a successful event write."""
    mode = mail_mode(params)
    if mode == "none":
        return
    kind = {
        "events.insert": "invitation",
        "events.update": "update",
        "events.patch": "update",
        "events.delete": "cancellation",
    }[endpoint]
    to = guests(before, principal=principal, calendar_id=calendar_id) | guests(
        after, principal=principal, calendar_id=calendar_id
    )
    if mode == "externalOnly":
        to = {a for a in to if not is_google_user(a)}
    log.add(Mail(kind, principal, calendar_id, event_id, tuple(sorted(to))))


def notify_acl(log: MailLog, params: dict[str, Any], body: Any, *, principal: str, calendar_id: str) -> None:
    """acl.insert: sendNotifications defaults to true; a user or group scope gets a mail."""
    if str(params.get("sendNotifications", "true")).lower() == "false" or not isinstance(body, dict):
        return
    scope = body.get("scope") or {}
    if body.get("role") == "none":  # "there are no notifications on access removal"
        return
    if scope.get("type") in ("user", "group") and scope.get("value"):
        log.add(Mail("calendar_shared", principal, calendar_id, None, (str(scope["value"]).lower(),)))
