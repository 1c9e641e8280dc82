"""The results of queued jobs (issue 13), kept beside the catalog they changed; files
found by their sha256 (which AIPs hold this file?) without reading the whole table.

Revision ID: 0003_jobs_digests
Revises: 0002_event_order
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_jobs_digests"
down_revision = "0002_event_order"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "job_results",
        sa.Column("job_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("task", sa.Text, nullable=False),
        sa.Column("aip_id", sa.Text),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("result", sa.Text),
        sa.Column("error", sa.Text),
        sa.Column("finished", sa.Text, nullable=False),
        sa.Column("worker", sa.Text),
    )
    op.create_index("files_sha256", "files", ["sha256"])
