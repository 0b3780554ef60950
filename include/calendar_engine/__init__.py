"""The calendar engine: the pure Advoware ⇄ Google Calendar sync logic. Canonical model, mapping both
ways, RRULE, deterministic ids, the planner and its plan.

Nothing in this package does I/O, talks to a network, imports Airflow or any other package of the
project (tests/unit/test_layout.py checks it): every function takes plain data (the raw JSON of both APIs,
hub links, a policy) and returns plain data. The executor (include/calendar_sync: hub + clients)
consumes `Plan` (see `plan.py`), which serialises to JSON.
"""

from include.calendar_engine.fingerprint import fingerprint
from include.calendar_engine.ids import event_id
from include.calendar_engine.mapping_advoware import from_advoware, to_advoware
from include.calendar_engine.mapping_google import from_google, to_google
from include.calendar_engine.models import Appointment, Matter, Recurrence, Unsupported
from include.calendar_engine.plan import Action, HubLink, Plan, Report
from include.calendar_engine.planner import plan_sync
from include.calendar_engine.policy import Policy, Window

__all__ = [
    "Action",
    "Appointment",
    "HubLink",
    "Matter",
    "Plan",
    "Policy",
    "Recurrence",
    "Report",
    "Unsupported",
    "Window",
    "event_id",
    "fingerprint",
    "from_advoware",
    "from_google",
    "plan_sync",
    "to_advoware",
    "to_google",
]
