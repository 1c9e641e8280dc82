"""The full-text search index (issue 27): a row per AIP, file and page of extracted text,
its words' keys indexed by FTS5 (SQLite) or a GIN index of lexemes (PostgreSQL).

Revision ID: 0006_search
Revises: 0005_file_validations
"""

from alembic import op

revision = "0006_search"
down_revision = "0005_file_validations"
branch_labels = None
depends_on = None


def upgrade() -> None:
    from preserve.catalog.tables import search_pages

    search_pages.create(op.get_bind())  # with its index (tables.SEARCH_DDL)


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        op.execute("DROP TABLE IF EXISTS search_fts")
    op.drop_table("search_pages")
