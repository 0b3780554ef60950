"""The pure Advoware ⇄ Google Calendar sync engine: canonical model, mapping both ways, RRULE, planner.

Nothing in this package does I/O, talks to a network or imports Airflow: every function takes plain
data (the raw JSON of both APIs, hub links, a policy) and returns plain data. The executor (hub +
clients) consumes `Plan` (see `plan.py`), which serialises to JSON.
"""

from include.sync.fingerprint import fingerprint
from include.sync.mapping_advoware import from_advoware, to_advoware
from include.sync.mapping_google import event_id, from_google, to_google
from include.sync.models import Appointment, Matter, Recurrence, Unsupported
from include.sync.plan import Action, HubLink, Plan, Report
from include.sync.planner import plan_sync
from include.sync.policy import Policy, Window

__all__ = [
    "Action", "Appointment", "HubLink", "Matter", "Plan", "Policy", "Recurrence", "Report", "Unsupported",
    "Window", "event_id", "fingerprint", "from_advoware", "from_google", "plan_sync", "to_advoware",
    "to_google",
]
