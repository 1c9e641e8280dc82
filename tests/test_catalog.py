"""The catalog on both of its databases (issue 13): every test here runs on SQLite and on a
real PostgreSQL server, through the services a user runs, so each catalog statement is
exercised on each dialect. The schema's migrations are checked against its declaration."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from preserve.access.export import export
from preserve.catalog import Catalog
from preserve.catalog.database import HEAD, REVISIONS, safe_url
from preserve.catalog.tables import metadata
from preserve.data.describe import Description, describe
from preserve.errors import ConfigError
from preserve.ingest.ingest import Metadata, ingest
from preserve.repository import Repository
from preserve.storage.audit import audit
from preserve.storage.check import check
from preserve.storage.repair import repair
from tests.conftest import (
    assert_bagit_python_valid,
    content_key,
    copy_catalog,
    many_small_files,
    two_disk_repo,
)

SCHEMA4 = Path(__file__).with_name("data") / "catalog-schema4.sql"


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request) -> str | None:
    """None for SQLite (the default), else the URL of a new PostgreSQL database."""
    return None if request.param == "sqlite" else request.getfixturevalue("fresh_database")


@pytest.mark.storage_left_damaged  # repaired below, but the second copy keeps its old bytes
def test_a_repository_lives_its_whole_life_on_either_catalog(tmp_path, backend, collection):
    """Ingest, two copies, a new version, listing and showing, an audit that finds a
    flipped bit once, its repair, a clean audit, the consistency check and an export: the
    same answers on both databases."""
    repo = two_disk_repo(tmp_path, backend)
    assert repo.shared is (backend is not None)
    aip = ingest(repo, collection, Metadata("Letters", title="Letters")).aip_id
    other = ingest(repo, many_small_files(tmp_path / "many", 300), Metadata("Bulk")).aip_id
    describe(repo, aip[:8], Description(title="Letters, corrected", note="title fixed"))

    listed = {a.id: a for a in repo.catalog.list_aips()}
    assert set(listed) == {aip, other}
    assert listed[aip].version == 2 and listed[aip].title == "Letters, corrected"
    assert listed[aip].locations == ["disk2", "local"] == listed[other].locations
    assert listed[other].files == 300 and repo.catalog.list_aips("Bulk")[0].id == other
    assert repo.catalog.resolve(aip[:6].upper()) == aip  # a prefix, in either case
    assert [v["version"] for v in repo.catalog.versions_of(aip)] == [1, 2]
    types = [e.type for e in repo.catalog.events(aip)]
    assert types[0] == "ingestion" and types[-1] == "metadata modification"
    assert repo.catalog.replica_summary()["disk2"][0] == 3  # 2 versions + 1
    assert sum(n for _p, _f, n, _b in repo.catalog.format_counts()) == \
        sum(a.files for a in listed.values())

    bag = repo.locations["local"].bag_path(content_key(other))
    target = sorted((bag / "data").rglob("*.txt"))[17]
    target.write_bytes(b"bit rot\n")
    found = audit(repo, full=True)
    assert [(p.kind, p.location, p.aip) for p in found.problems] == [
        ("corrupt", "local", other)]
    assert found.exit_code == 1
    assert audit(repo, due=True).problems[0].path == found.problems[0].path  # still due

    assert [r.outcome for r in repair(repo).repairs] == ["repaired"]
    assert audit(repo, full=True).status == "ok"
    assert check(repo).exit_code == 0
    out = tmp_path / "export"
    export(repo, aip, out)
    assert_bagit_python_valid(out)
    repo.close()


def test_a_crash_after_publishing_is_completed_on_either_catalog(tmp_path, backend,
                                                                  collection, monkeypatch):
    """The staging rows of an ingest that died after publishing, before the catalog said
    "stored", are completed by recovery, on both databases (the catalog's half of crash
    recovery)."""
    from preserve.storage.recovery import recover

    repo, _ = Repository.init(tmp_path / "repo", backend)

    def crash(*_a, **_k):
        raise SystemExit("power cut")

    monkeypatch.setattr(Catalog, "mark_stored", crash)
    monkeypatch.setattr("preserve.ingest.ingest._Job.abandon", lambda self: None)
    with pytest.raises(SystemExit):
        ingest(repo, collection, Metadata("c"))
    monkeypatch.undo()
    pending = repo.catalog.pending()
    assert len(pending) == 1 and repo.catalog.list_aips() == []
    (repo.staging / f"{pending[0]}.lock").unlink(missing_ok=True)
    assert any("completed the catalog record" in a for a in recover(repo))
    assert [a.id for a in repo.catalog.list_aips()] == pending
    assert check(repo).exit_code == 0
    repo.close()


def _shape(catalog: Catalog) -> dict:
    """Every table's columns (SQLite type affinity, nullability), key, indexes and foreign
    keys, as the database itself reports them."""
    import sqlalchemy as sa

    with catalog.sqlalchemy() as conn:
        return _inspected(sa.inspect(conn))


def _inspected(inspector) -> dict:
    shape = {}
    for table in inspector.get_table_names():
        key = inspector.get_pk_constraint(table)["constrained_columns"]
        shape[table] = (
            [(c["name"], "INT" if "INT" in str(c["type"]) else str(c["type"]),
              c["nullable"] or c["name"] in key) for c in inspector.get_columns(table)],
            key,
            sorted((i["name"], tuple(i["column_names"])) for i in inspector.get_indexes(table)),
            sorted((f["referred_table"], tuple(f["constrained_columns"]))
                   for f in inspector.get_foreign_keys(table)))
    return shape


def test_the_migrations_lead_to_the_declared_schema(tmp_path):
    """A catalog of the last schema before Alembic (schema 4, as preserve wrote it with
    sqlite3), with rows in it, is migrated to HEAD: its events keep their order, and its
    tables are those a new catalog is made with; the migrations are the ones REVISIONS
    names, in order."""
    from alembic.script import ScriptDirectory

    path = tmp_path / "catalog.sqlite"
    db = sqlite3.connect(path)
    db.executescript(SCHEMA4.read_text())
    db.execute("INSERT INTO aips VALUES ('a1', 'c', NULL, 'stored', '2026', 's', 'folder')")
    for n, kind in enumerate(["ingestion", "validation", "fixity check"]):
        db.execute("INSERT INTO events VALUES (?, 'a1', ?, '2026-01-01T00:00:00Z', "
                   "'success', 'd', NULL, NULL, NULL)", (f"e{9 - n}", kind))
    db.commit()
    db.close()
    migrated = Catalog(path)
    assert [e.type for e in migrated.events("a1")] == ["ingestion", "validation", "fixity check"]
    assert migrated.execute("SELECT version_num FROM alembic_version").scalar() == HEAD
    assert migrated.execute("SELECT value FROM meta").scalar() == "5"  # older preserve: no
    Catalog.create_if_missing(tmp_path / "new.sqlite")
    new = Catalog(tmp_path / "new.sqlite")
    assert _shape(migrated) == _shape(new)
    migrated.close()
    new.close()
    folder = Path(sys.modules[Catalog.__module__].__file__).with_name("migrations")
    walked = [s.revision for s in ScriptDirectory(str(folder)).walk_revisions()]
    assert list(reversed(walked)) == list(REVISIONS)


def test_a_new_catalog_matches_its_declaration_on_postgresql(fresh_database):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    Catalog.create_if_missing(fresh_database)
    catalog = Catalog(fresh_database)
    with catalog.sqlalchemy() as conn:
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []
    assert Catalog.create_if_missing(fresh_database) is False  # never made twice
    catalog.close()


def test_a_password_is_never_written(tmp_path, postgres):
    with pytest.raises(ConfigError, match="password") as e:
        Repository.init(tmp_path / "repo", "postgresql://preserve:s3cret@db.example.org/p")
    assert "PGPASSWORD" in e.value.hint and "s3cret" not in str(e.value)
    assert not (tmp_path / "repo").exists()
    assert safe_url("postgres://u@h:5/d") == "postgresql://u@h:5/d"


@pytest.mark.parametrize("address", [
    "postgresql://preserve@127.0.0.1:1/db?password=SECRETX",
    "postgresql+psycopg://preserve@127.0.0.1:1/db?sslmode=disable&password=SECRETX",
    "postgres://127.0.0.1:1/db?user=p&PASSWORD=SECRETX",
    "postgresql://127.0.0.1:1/db?pass%77ord=SECRETX",
    "postgresql://127.0.0.1:1/db?sslpassword=SECRETX",
])
def test_a_password_anywhere_in_the_address_is_refused_and_never_said(tmp_path, address):
    """Red team 2026-12 case 51: '?password=' was written to preserve.yaml and printed in
    every error."""
    env = dict(os.environ, PRESERVE_NO_PROGRESS="1")
    done = subprocess.run([sys.executable, "-m", "preserve", "--repo", str(tmp_path / "r"),
                           "init", "--catalog", address], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2 and "password" in done.stderr
    assert "SECRETX" not in done.stdout + done.stderr and not (tmp_path / "r").exists()
    env["PRESERVE_CATALOG"] = address
    Repository.init(tmp_path / "s")[0].close()
    config = tmp_path / "s" / "preserve.yaml"
    config.write_text(config.read_text() + f"catalog: {address}\n")
    done = subprocess.run([sys.executable, "-m", "preserve", "--repo", str(tmp_path / "s"),
                           "list"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "SECRETX" not in done.stdout + done.stderr


def test_init_from_the_environment_and_an_unreachable_server(tmp_path, fresh_database):
    """PRESERVE_CATALOG selects PostgreSQL at init; a server that is gone later is a
    clear message (exit 2) naming the address, not a traceback."""
    env = dict(os.environ, PRESERVE_REPO=str(tmp_path / "repo"), PRESERVE_CATALOG=fresh_database,
               PRESERVE_NO_PROGRESS="1")
    done = subprocess.run([sys.executable, "-m", "preserve", "init"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    config = yaml.safe_load((tmp_path / "repo" / "preserve.yaml").read_text())
    assert config["catalog"] == fresh_database
    assert not (tmp_path / "repo" / "catalog.sqlite").exists()
    gone = fresh_database.rsplit(":", 1)[0] + ":1/nowhere"
    config["catalog"] = gone
    (tmp_path / "repo" / "preserve.yaml").write_text(yaml.safe_dump(config))
    failed = subprocess.run([sys.executable, "-m", "preserve", "list"], env=env,
                            capture_output=True, text=True, timeout=60)
    assert failed.returncode == 2
    assert "cannot reach the catalog postgresql://postgres@127.0.0.1:1/nowhere" in failed.stderr
    assert "Traceback" not in failed.stderr


def test_writers_on_two_machines_exclude_each_other(tmp_path, fresh_database):
    """A writer's lock of (location, AIP) is also the shared catalog's: a second machine
    (its own repository folder, so its own lock files) cannot take it while the first
    holds it, and can once it is released or its holder's connection is gone."""
    from preserve.errors import Busy
    from preserve.system.locks import writer_lock

    Catalog.create_if_missing(fresh_database)
    first, second = Catalog(fresh_database), Catalog(fresh_database)
    try:
        with writer_lock(tmp_path / "host-a", "local", "aip-1", catalog=first):
            with pytest.raises(Busy, match="another run is writing AIP aip-1"), \
                    writer_lock(tmp_path / "host-b", "local", "aip-1", wait=False,
                                catalog=second):
                pass
            with writer_lock(tmp_path / "host-b", "local", "aip-2", wait=False, catalog=second):
                pass  # another AIP is free
        with writer_lock(tmp_path / "host-b", "local", "aip-1", wait=False, catalog=second):
            pass
        with writer_lock(tmp_path / "host-a", "local", "aip-3", catalog=first):
            first.close()  # the holder's connection ends (a machine gone)
            # the server ends that session a moment after the client closes: wait for it
            deadline = time.monotonic() + 60
            while True:
                try:
                    with writer_lock(tmp_path / "host-b", "local", "aip-3", wait=False,
                                     catalog=second):
                        break
                except Busy:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
    finally:
        second.close()


def test_the_catalog_knows_every_table_it_needs():
    from preserve.catalog.database import TABLES

    assert set(metadata.tables) | {"alembic_version"} == TABLES


@pytest.mark.sqlite_catalog  # damages the SQLite file itself
def test_a_catalog_missing_a_table_is_refused_before_anything_is_written(tmp_path):
    """Red team 2026-12 case 54: with `files` dropped, list said exit 0, the other
    commands stopped with internal errors, and the catalog was modified."""
    repo, _ = Repository.init(tmp_path / "repo")
    ingest(repo, many_small_files(tmp_path / "s", 2), Metadata("c"))
    repo.close()
    path = tmp_path / "repo" / "catalog.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE files")
    conn.close()
    before = path.read_bytes()
    for command in (["list"], ["audit"], ["check"]):
        done = subprocess.run([sys.executable, "-m", "preserve", *command], capture_output=True,
                              text=True, env=dict(os.environ, PRESERVE_REPO=str(tmp_path / "repo")))
        assert done.returncode == 2 and "lacks the table(s) files" in done.stderr, done.stderr
    assert path.read_bytes() == before


@pytest.mark.sqlite_catalog
def test_a_read_only_catalog_is_said_not_an_internal_error(tmp_path):
    """Case 57: the catalog on a read-only mount gave 'internal error ... readonly'."""
    repo, _ = Repository.init(tmp_path / "repo")
    src = many_small_files(tmp_path / "s", 2)
    ingest(repo, src, Metadata("c"))
    repo.close()
    path = tmp_path / "repo" / "catalog.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    if subprocess.run(["mount", "--bind", str(path), str(path)]).returncode != 0:
        pytest.skip("bind mounts are not allowed here")
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(path)], check=True)
        done = subprocess.run([sys.executable, "-m", "preserve", "ingest", str(src), "-c", "c"],
                              capture_output=True, text=True,
                              env=dict(os.environ, PRESERVE_REPO=str(tmp_path / "repo")))
    finally:
        subprocess.run(["umount", str(path)])
    assert done.returncode == 3 and "read-only" in done.stderr, done.stderr
    assert "internal error" not in done.stderr
    assert check(Repository(tmp_path / "repo")).status == "consistent"


def test_init_with_an_unreachable_catalog_leaves_nothing_that_blocks_a_plain_init(tmp_path):
    """Issue 22: init --catalog with a server away left a preserve.yaml naming it, so a
    later plain init failed too."""
    env = dict(os.environ, PRESERVE_NO_PROGRESS="1")
    env.pop("PRESERVE_CATALOG", None)
    root = tmp_path / "r"
    done = subprocess.run([sys.executable, "-m", "preserve", "--repo", str(root), "init",
                           "--catalog", "postgresql://preserve@127.0.0.1:1/db"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "cannot reach the catalog" in done.stderr
    assert not (root / "preserve.yaml").exists()
    done = subprocess.run([sys.executable, "-m", "preserve", "--repo", str(root), "init"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


@pytest.mark.sqlite_catalog  # copies and edits the SQLite file itself
def test_two_catalogs_are_compared_table_by_table_across_both_databases(
        tmp_path, collection, fresh_database):
    """Issue 24's proof of a rebuild: `catalog diff` names, per table, the rows only one
    catalog holds and those whose key both hold with other values; an SQLite catalog and
    a PostgreSQL copy of it (other collations, other drivers) are the same."""
    from preserve.storage.history import publish
    from tests.test_cli import run

    repo, _ = Repository.init(tmp_path / "repo")
    aip = ingest(repo, collection, Metadata("Parish", title="Registers")).aip_id
    describe(repo, aip, Description(title="Parish registers, 1890-1920"))
    audit(repo, full=True)
    publish(repo)  # as the CLI does after each command: the copies hold the signed log
    copy = tmp_path / "copy.sqlite"
    with sqlite3.connect(repo.catalog.path) as source, sqlite3.connect(copy) as target:
        source.backup(target)

    Catalog.create_if_missing(fresh_database)
    server = Catalog(fresh_database)
    copy_catalog(repo.catalog, server)
    server.close()
    repo.close()
    root = tmp_path / "repo"
    for other in (copy, fresh_database, tmp_path / "repo"):
        same = json.loads(run(root, "catalog", "diff", other, "--json").stdout)
        assert same["same"] and all(t["same"] for t in same["tables"]), other
        assert {t["table"] for t in same["tables"]} >= {"aips", "files", "events", "replicas"}

    with sqlite3.connect(copy) as db:
        path = db.execute("SELECT path FROM files WHERE path LIKE 'data/%' ORDER BY path "
                          "LIMIT 1").fetchone()[0]
        db.execute("UPDATE files SET sha256 = ? WHERE path = ?", ("0" * 64, path))
        db.execute("DELETE FROM events WHERE id = (SELECT id FROM events ORDER BY seq DESC "
                   "LIMIT 1)")
        db.execute("INSERT INTO aips SELECT 'aip-only-there', collection, title, state, "
                   "created, source, source_kind FROM aips LIMIT 1")
    said = run(root, "catalog", "diff", copy, "--json", check_code=1)
    tables = {t["table"]: t for t in json.loads(said.stdout)["tables"]}
    assert (tables["files"]["changed"], tables["files"]["only_here"]) == (1, 0)
    assert tables["files"]["examples"][0].startswith("changed sha256: {'aip_id': ")
    assert (tables["events"]["only_here"], tables["events"]["only_there"]) == (1, 0)
    assert tables["aips"]["only_there"] == 1 and "aip-only-there" in \
        tables["aips"]["examples"][0]
    assert [n for n, t in tables.items() if not t["same"]] == ["aips", "events", "files"]
    assert "The catalogs differ" in run(root, "catalog", "diff", copy, check_code=1).stdout
    left = json.loads(run(root, "catalog", "diff", copy, "--ignore", "files.sha256",
                          "--json", check_code=1).stdout)
    assert [t["table"] for t in left["tables"] if not t["same"]] == ["aips", "events"]
    said = run(root, "catalog", "diff", copy, "--ignore", "files.nosuch", check_code=2)
    assert "--ignore files.nosuch: no such column in the catalog" in said.stderr
