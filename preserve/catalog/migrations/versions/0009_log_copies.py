"""How far each location holds the event log (issue 29).

Revision ID: 0009_log_copies
Revises: 0008_stored_etags
"""

from alembic import op

revision = "0009_log_copies"
down_revision = "0008_stored_etags"
branch_labels = None
depends_on = None


def upgrade() -> None:
    from preserve.catalog.tables import log_copies

    log_copies.create(op.get_bind())


def downgrade() -> None:
    op.drop_table("log_copies")
