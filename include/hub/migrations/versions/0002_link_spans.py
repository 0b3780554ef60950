"""Remember each linked item's date range, so an item that merely left the window is not deleted."""

from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    op.execute("ALTER TABLE calendar_links ADD COLUMN span_start date, ADD COLUMN span_end date")


def downgrade() -> None:
    op.execute("ALTER TABLE calendar_links DROP COLUMN span_start, DROP COLUMN span_end")
