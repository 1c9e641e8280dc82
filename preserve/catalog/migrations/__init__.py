"""Alembic migrations of the catalog (see catalog_tables for the schema they lead to)."""
