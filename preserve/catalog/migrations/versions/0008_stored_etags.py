"""The ETag of each object of a replica in an object store, as verified (issue 29).

Revision ID: 0008_stored_etags
Revises: 0007_rights
"""

from alembic import op

revision = "0008_stored_etags"
down_revision = "0007_rights"
branch_labels = None
depends_on = None


def upgrade() -> None:
    from preserve.catalog.tables import stored_etags

    stored_etags.create(op.get_bind())


def downgrade() -> None:
    op.drop_table("stored_etags")
