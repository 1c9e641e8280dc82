"""The tamper-evident event log (issue 24): each event names where its PREMIS record is
kept (`record`), and the log's entries and signed checkpoints are kept beside the events
they were made from (their copies in every storage location are checked against them).

Revision ID: 0004_event_log
Revises: 0003_jobs_digests
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_event_log"
down_revision = "0003_jobs_digests"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("record", sa.Text))
    op.create_table(
        "log_entries",
        sa.Column("position", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("entry_id", sa.Text, nullable=False, unique=True),
        sa.Column("aip_id", sa.Text),
        sa.Column("entry", sa.Text, nullable=False),
    )
    op.create_index("log_entries_aip", "log_entries", ["aip_id"])
    op.create_table(
        "log_pending",
        sa.Column("entry_id", sa.Text, primary_key=True),
        sa.Column("aip_id", sa.Text),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "log_checkpoints",
        sa.Column("size", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("root", sa.Text, nullable=False),
        sa.Column("frontier", sa.Text, nullable=False),
        sa.Column("note", sa.Text, nullable=False),
    )
