"""Initial sync hub schema."""

from alembic import op

revision = "0001"
down_revision = None


def upgrade() -> None:
    op.execute(
        """
        -- One row per employee: where their Google calendar is and how far we have read it.
        CREATE TABLE employee_calendars (
            employee            text PRIMARY KEY,          -- Advoware Kürzel
            email               text,
            calendar_id         text,
            acl_rule_id         text,
            mode                text NOT NULL DEFAULT 'shared' CHECK (mode IN ('shared', 'delegated')),
            sync_token          text,
            active              boolean NOT NULL DEFAULT true,
            last_full_sync_at   timestamptz,
            created_at          timestamptz NOT NULL DEFAULT now(),
            updated_at          timestamptz NOT NULL DEFAULT now()
        );

        -- One row per linked appointment: Advoware frNr <-> Google event id, per employee.
        CREATE TABLE calendar_links (
            id                      bigserial PRIMARY KEY,
            employee                text NOT NULL,
            frnr                    bigint,
            google_event_id         text,
            advoware_fingerprint    text,
            google_fingerprint      text,
            advoware_changed_at     text,                  -- zuletztGeaendertAm as Advoware sent it
            google_updated          text,                  -- Google's `updated` (RFC 3339)
            google_etag             text,
            status                  text NOT NULL DEFAULT 'linked'
                                    CHECK (status IN ('linked', 'pending', 'failed', 'conflict',
                                                      'unsupported', 'deleted', 'skipped')),
            attempts                integer NOT NULL DEFAULT 0,
            last_error              text,
            created_at              timestamptz NOT NULL DEFAULT now(),
            updated_at              timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT calendar_links_one_side CHECK (frnr IS NOT NULL OR google_event_id IS NOT NULL)
        );
        CREATE UNIQUE INDEX calendar_links_employee_frnr ON calendar_links (employee, frnr)
            WHERE frnr IS NOT NULL;
        CREATE UNIQUE INDEX calendar_links_employee_event ON calendar_links (employee, google_event_id)
            WHERE google_event_id IS NOT NULL;
        CREATE INDEX calendar_links_status ON calendar_links (status) WHERE status <> 'linked';

        -- Written before an Advoware POST so a crashed run can adopt instead of duplicating.
        CREATE TABLE advoware_create_intents (
            id                  bigserial PRIMARY KEY,
            employee            text NOT NULL,
            google_event_id     text NOT NULL,
            fingerprint         text NOT NULL,
            frnr                bigint,                    -- set once the create is confirmed
            status              text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'done', 'abandoned')),
            created_at          timestamptz NOT NULL DEFAULT now(),
            updated_at          timestamptz NOT NULL DEFAULT now(),
            UNIQUE (employee, google_event_id)
        );

        -- The plan `prepare` computed; the phase tasks read it by id (XCom carries only ids).
        CREATE TABLE sync_plans (
            id                  bigserial PRIMARY KEY,
            run_id              text NOT NULL,
            employee            text NOT NULL,
            created_at          timestamptz NOT NULL DEFAULT now(),
            dry_run             boolean NOT NULL DEFAULT false,
            counts              jsonb NOT NULL DEFAULT '{}'::jsonb,
            plan                jsonb NOT NULL,
            google_sync_token   text,                      -- to store once every phase succeeded
            UNIQUE (run_id, employee)
        );

        -- The run log: one row per (run, employee) and its outcome.
        CREATE TABLE sync_runs (
            id                  bigserial PRIMARY KEY,
            run_id              text NOT NULL,
            kind                text NOT NULL DEFAULT 'calendar' CHECK (kind IN ('calendar', 'beteiligte')),
            employee            text,
            started_at          timestamptz NOT NULL DEFAULT now(),
            finished_at         timestamptz,
            status              text NOT NULL DEFAULT 'running'
                                CHECK (status IN ('running', 'success', 'failed', 'stopped', 'dry_run')),
            counts              jsonb NOT NULL DEFAULT '{}'::jsonb,
            error               text
        );
        CREATE UNIQUE INDEX sync_runs_run_employee ON sync_runs (run_id, kind, coalesce(employee, ''));

        -- EspoCRM party id <-> Advoware betNr.
        CREATE TABLE party_links (
            espo_id             text PRIMARY KEY,
            bet_nr              bigint UNIQUE,
            advoware_row_id     text,
            advoware_changed_at text,
            espo_version        integer,
            fingerprint         text,
            status              text NOT NULL DEFAULT 'linked'
                                CHECK (status IN ('linked', 'unlinked', 'deleted', 'failed')),
            attempts            integer NOT NULL DEFAULT 0,
            last_error          text,
            last_synced_at      timestamptz,
            created_at          timestamptz NOT NULL DEFAULT now(),
            updated_at          timestamptz NOT NULL DEFAULT now()
        );

        -- Work that could not be done: a person can list and replay it.
        CREATE TABLE dead_letters (
            id                  bigserial PRIMARY KEY,
            source              text NOT NULL,             -- 'webhook', 'beteiligte_sync', 'calendar_sync'
            entity_id           text,
            reason              text NOT NULL,
            payload             jsonb,
            attempts            integer NOT NULL DEFAULT 0,
            created_at          timestamptz NOT NULL DEFAULT now(),
            replayed_at         timestamptz
        );
        CREATE INDEX dead_letters_open ON dead_letters (created_at) WHERE replayed_at IS NULL;

        -- Every write the integration made (or refused): who, what, outcome. Never a body.
        CREATE TABLE write_audit (
            id                  bigserial PRIMARY KEY,
            at                  timestamptz NOT NULL DEFAULT now(),
            actor               text NOT NULL,             -- 'proxy', 'calendar_sync', 'beteiligte_sync', ...
            token_scope         text,
            method              text NOT NULL,
            target              text NOT NULL,             -- path or system:id
            status              integer,
            request_id          text,
            employee            text,
            detail              text
        );
        CREATE INDEX write_audit_at ON write_audit (at);
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP TABLE write_audit; DROP TABLE dead_letters; DROP TABLE party_links; DROP TABLE sync_runs;
        DROP TABLE sync_plans; DROP TABLE advoware_create_intents; DROP TABLE calendar_links;
        DROP TABLE employee_calendars;
        """
    )
