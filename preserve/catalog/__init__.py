"""The catalog: the index of AIPs, versions, files, replicas, audits, events and jobs, in
SQLite (one machine) or PostgreSQL (shared), with its tables, its Alembic migrations and
the job queue on the same database. Every entity reads and writes it; it imports no
operation. It is an index, never the record: the OCFL objects in storage are."""
