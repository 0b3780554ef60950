"""Google push: the watch channels of the employees' calendars, and the per-employee sync lease.

Google does not list a project's channels: this table is the only record of them (ids, the
per-channel secret, expiry). The lease makes sure one employee is never synced by two runs at once
(a scheduled run of the firm and a targeted one); it expires, so a killed worker blocks nobody for ever."""

from alembic import op

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE calendar_channels (
            channel_id            text PRIMARY KEY,          -- ours (X-Goog-Channel-ID)
            employee              text NOT NULL,
            calendar_id           text NOT NULL,
            resource_id           text,                      -- Google's (X-Goog-Resource-ID), from watch
            token                 text NOT NULL,             -- per-channel secret (X-Goog-Channel-Token)
            address               text NOT NULL,             -- where Google posts
            expires_at            timestamptz NOT NULL,      -- as Google granted it
            state                 text NOT NULL DEFAULT 'active'
                                  CHECK (state IN ('active', 'stopped')),
            created_at            timestamptz NOT NULL DEFAULT now(),
            stopped_at            timestamptz,
            stop_reason           text,                      -- renewed, employee_left, unknown_to_google, ...
            last_message_number   bigint,                    -- X-Goog-Message-Number last accepted
            last_notification_at  timestamptz,
            failures              integer NOT NULL DEFAULT 0, -- renewals failed in a row
            last_error            text,                      -- ids and error class only
            failing_since         timestamptz
        );
        CREATE INDEX calendar_channels_active ON calendar_channels (employee) WHERE state = 'active';
        CREATE INDEX calendar_channels_expiry ON calendar_channels (expires_at) WHERE state = 'active';

        -- One row while a run syncs the employee; taken again only after expires_at.
        CREATE TABLE employee_sync_leases (
            employee     text PRIMARY KEY,
            holder       text NOT NULL,                      -- run id and task (who holds it)
            acquired_at  timestamptz NOT NULL DEFAULT now(),
            expires_at   timestamptz NOT NULL
        );
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE employee_sync_leases; DROP TABLE calendar_channels")
