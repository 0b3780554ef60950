"""Remember when the employee's access to their Google calendar was last checked (shared again if the
ACL rule was removed, put back on their list, made again if the calendar was deleted)."""

from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    op.execute("ALTER TABLE employee_calendars ADD COLUMN access_checked_at timestamptz")


def downgrade() -> None:
    op.execute("ALTER TABLE employee_calendars DROP COLUMN access_checked_at")
