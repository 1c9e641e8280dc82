"""The catalog as preserve wrote it with sqlite3 before Alembic (meta 'schema' 3 or 4).

A catalog of that time has no alembic_version table; it is brought here from the base.
Schema 3 lacked only `derivations` (issue 10); everything else is already there.

Revision ID: 0001_schema4
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001_schema4"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    if "derivations" in sa.inspect(op.get_bind()).get_table_names():
        return
    op.create_table(
        "derivations",
        sa.Column("aip_id", sa.Text, sa.ForeignKey("aips.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("derivative", sa.Text, nullable=False),
        sa.Column("rule", sa.Text, nullable=False),
        sa.Column("event_id", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("aip_id", "derivative"),
        sqlite_with_rowid=False,
    )
    op.create_index("derivations_source", "derivations", ["aip_id", "source"])
