"""The series exceptions the sync knows: one occurrence of a Google series moved, changed or cancelled."""

from alembic import op

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    op.execute(
        """
        -- One row per exception seen in an employee's calendar (ids, times and a content hash only).
        CREATE TABLE series_exceptions (
            id                  bigserial PRIMARY KEY,
            employee            text NOT NULL,
            instance_id         text NOT NULL,             -- Google's id of the occurrence
            master_event_id     text NOT NULL,             -- its series (recurringEventId)
            frnr                bigint,                    -- the series' Advoware frNr when linked
            original_start      text NOT NULL,             -- where the series puts it (Berlin ISO)
            kind                text NOT NULL CHECK (kind IN ('moved', 'changed', 'cancelled')),
            fingerprint         text NOT NULL DEFAULT '',  -- of its content as last seen
            status              text NOT NULL DEFAULT 'standing'
                                CHECK (status IN ('standing', 'reverted', 'dropped', 'gone')),
            attempts            integer NOT NULL DEFAULT 0,
            first_seen_at       timestamptz NOT NULL DEFAULT now(),
            last_seen_at        timestamptz NOT NULL DEFAULT now(),
            closed_at           timestamptz,
            UNIQUE (employee, instance_id)
        );
        CREATE INDEX series_exceptions_standing ON series_exceptions (employee) WHERE status = 'standing';
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE series_exceptions")
