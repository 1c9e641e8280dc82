"""Events keep the order they were recorded in without SQLite's rowid (which PostgreSQL
has not): a `seq` column, filled from the rowid for the events already there. Audit
problems are indexed by run (a PostgreSQL catalog of many runs reads them by run).

Revision ID: 0002_event_order
Revises: 0001_schema4
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_event_order"
down_revision = "0001_schema4"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("seq", sa.BigInteger))
    if op.get_bind().dialect.name == "sqlite":
        op.execute("UPDATE events SET seq = rowid")
    op.create_index("events_seq", "events", ["seq"])
    op.create_index("audit_problems_run", "audit_problems", ["run_id"])
