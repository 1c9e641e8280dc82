-- The catalog schema 4, as preserve (e7dc1f7) wrote it with sqlite3, before Alembic.
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS aips (
    id TEXT PRIMARY KEY,
    collection TEXT NOT NULL,
    title TEXT,
    state TEXT NOT NULL CHECK (state IN ('staging', 'stored')),
    created TEXT NOT NULL,
    source TEXT,
    source_kind TEXT
);
CREATE INDEX IF NOT EXISTS aips_collection ON aips (collection);
CREATE TABLE IF NOT EXISTS versions (
    aip_id TEXT NOT NULL REFERENCES aips (id) ON DELETE CASCADE,
    version INTEGER NOT NULL,
    created TEXT NOT NULL,
    files INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    payload_oxum TEXT NOT NULL,
    tagmanifest TEXT NOT NULL,
    tagmanifest_sha256 TEXT NOT NULL,
    inventory_sha512 TEXT NOT NULL,
    message TEXT NOT NULL,
    user_name TEXT NOT NULL,
    user_address TEXT,
    title TEXT,
    state TEXT NOT NULL CHECK (state IN ('staging', 'stored')),
    PRIMARY KEY (aip_id, version)
);
CREATE TABLE IF NOT EXISTS files (
    aip_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    path TEXT NOT NULL,
    size INTEGER NOT NULL,
    sha256 TEXT,
    sha512 TEXT,
    xxh3_128 TEXT,
    puid TEXT,
    format TEXT,
    format_version TEXT,
    mime TEXT,
    basis TEXT,
    warning TEXT,
    confidence TEXT,
    magic_mime TEXT,
    magic_description TEXT,
    PRIMARY KEY (aip_id, version, path),
    FOREIGN KEY (aip_id) REFERENCES aips (id) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS files_puid ON files (puid);
CREATE INDEX IF NOT EXISTS files_by_path ON files (aip_id, path, version);
CREATE TABLE IF NOT EXISTS replicas (
    aip_id TEXT NOT NULL REFERENCES aips (id) ON DELETE CASCADE,
    version INTEGER NOT NULL,
    location TEXT NOT NULL,
    key TEXT NOT NULL,
    state TEXT NOT NULL,
    stored TEXT NOT NULL,
    last_audit TEXT,
    PRIMARY KEY (aip_id, version, location)
);
CREATE TABLE IF NOT EXISTS events (
    id TEXT PRIMARY KEY,
    aip_id TEXT NOT NULL REFERENCES aips (id) ON DELETE CASCADE,
    type TEXT NOT NULL,
    datetime TEXT NOT NULL,
    outcome TEXT NOT NULL,
    detail TEXT NOT NULL,
    outcome_detail TEXT,
    agent TEXT,
    version INTEGER
);
CREATE INDEX IF NOT EXISTS events_aip ON events (aip_id);
-- Which payload file a migration derived from which (PREMIS: the derivative's derivation
-- relationship and the migration event in the version's premis-v<n>.xml say the same).
CREATE TABLE IF NOT EXISTS derivations (
    aip_id TEXT NOT NULL REFERENCES aips (id) ON DELETE CASCADE,
    version INTEGER NOT NULL,
    source TEXT NOT NULL,
    derivative TEXT NOT NULL,
    rule TEXT NOT NULL,
    event_id TEXT NOT NULL,
    PRIMARY KEY (aip_id, derivative)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS derivations_source ON derivations (aip_id, source);
CREATE TABLE IF NOT EXISTS audit_runs (
    id TEXT PRIMARY KEY,
    started TEXT NOT NULL,
    finished TEXT,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    replicas INTEGER NOT NULL DEFAULT 0,
    files INTEGER NOT NULL DEFAULT 0,
    bytes INTEGER NOT NULL DEFAULT 0,
    scope TEXT
);
-- When each replica file was last verified, for files audited apart from the rest of their
-- replica (sampling, an interrupted run, damage). A file without a row was last verified
-- with its whole replica (replicas.last_audit), or never (replicas.stored).
CREATE TABLE IF NOT EXISTS file_checks (
    aip_id TEXT NOT NULL REFERENCES aips (id) ON DELETE CASCADE,
    version INTEGER NOT NULL,
    location TEXT NOT NULL,
    path TEXT NOT NULL,
    checked TEXT NOT NULL,
    PRIMARY KEY (aip_id, version, location, path)
) WITHOUT ROWID;
-- The store's composite checksum of each file uploaded in parts (a few large files per AIP),
-- as it reported it at upload: quick S3 audits compare it, so a replaced object is caught
-- without reading it.
CREATE TABLE IF NOT EXISTS composite_checksums (
    aip_id TEXT NOT NULL REFERENCES aips (id) ON DELETE CASCADE,
    version INTEGER NOT NULL,
    location TEXT NOT NULL,
    path TEXT NOT NULL,
    checksum TEXT NOT NULL,
    PRIMARY KEY (aip_id, version, location, path)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS audit_problems (
    run_id TEXT NOT NULL REFERENCES audit_runs (id) ON DELETE CASCADE,
    aip_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    location TEXT NOT NULL,
    path TEXT,
    kind TEXT NOT NULL,
    detail TEXT NOT NULL
);
INSERT INTO meta VALUES ('schema', '4');
