"""Rights statements (issue 28): each as the version that recorded it holds it.

Revision ID: 0007_rights
Revises: 0006_search
"""

from alembic import op

revision = "0007_rights"
down_revision = "0006_search"
branch_labels = None
depends_on = None


def upgrade() -> None:
    from preserve.catalog.tables import rights_statements

    rights_statements.create(op.get_bind())


def downgrade() -> None:
    op.drop_table("rights_statements")
