"""Google Calendar client: per-employee calendars, incremental reads, idempotent batched writes.

Start at `client.GoogleCalendarClient`; then `provisioning`, `reading`, `writing`; `ids.event_id`
is the project's one definition of deterministic event ids.
"""
