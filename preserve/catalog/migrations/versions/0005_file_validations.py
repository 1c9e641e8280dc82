"""What a check of each file's content found (issue 26): format validation and virus
scanning, one row a file and check.

Revision ID: 0005_file_validations
Revises: 0004_event_log
"""

from alembic import op

revision = "0005_file_validations"
down_revision = "0004_event_log"
branch_labels = None
depends_on = None


def upgrade() -> None:
    from preserve.catalog.tables import file_validations

    file_validations.create(op.get_bind())


def downgrade() -> None:
    op.drop_table("file_validations")
