"""Alembic's entry point: migrations run on the connection the catalog hands over, inside
the transaction it opened (so a migration is all or nothing on both databases)."""

from alembic import context

from preserve.catalog.tables import metadata

context.configure(connection=context.config.attributes["connection"],
                  target_metadata=metadata, render_as_batch=True, transactional_ddl=False)
context.run_migrations()
