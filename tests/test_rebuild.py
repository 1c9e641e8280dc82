"""The catalog rebuilt from storage alone (issue 24): a repository that has ingested,
described, migrated, replicated to a second disk and to S3, audited (damage found and
repaired), loses its catalog; `catalog rebuild` brings back every table, row for row."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from preserve.catalog import Catalog
from preserve.data.describe import Description, describe
from preserve.ingest.ingest import Metadata, ingest
from preserve.planning.migrate import apply
from preserve.repository import Repository
from preserve.storage.audit import audit
from preserve.storage.history import publish
from preserve.storage.repair import repair
from preserve.storage.replicate import replicate
from tests import media
from tests.conftest import content_key, copy_catalog, two_disk_repo
from tests.s3server import S3Server
from tests.test_cli import run

# Columns (TABLE.COLUMN) a rebuilt catalog may hold other values in, and why: none. (The
# job_results of a PostgreSQL catalog's queue are not kept in storage; no job runs here.)
ALLOWED_TO_DIFFER: dict[str, str] = {}


def _three_location_repo(tmp_path: Path, server: S3Server, catalog: str | None = None
                         ) -> Repository:
    repo, _ = Repository.init(tmp_path / "repo", catalog)
    repo.close()
    bucket = f"rebuild-{uuid.uuid4().hex[:12]}"  # the S3 server's buckets outlive a test
    server.client().create_bucket(Bucket=bucket)
    (tmp_path / "disk2").mkdir()
    (repo.root / "locations" / "disk2.yaml").write_text(yaml.safe_dump(
        {"name": "disk2", "kind": "local", "path": str(tmp_path / "disk2")}))
    (repo.root / "locations" / "cloud.yaml").write_text(yaml.safe_dump({
        "name": "cloud", "kind": "s3", "bucket": bucket, "prefix": "preserve",
        "endpoint_url": server.url, "region": "us-east-1", "addressing_style": "path",
        "max_attempts": 2}))
    return Repository(repo.root)


def _copies(repo: Repository, n: int, locations: list[str]) -> None:
    policy = repo.root / "policies" / "default.yaml"
    data = yaml.safe_load(policy.read_text())
    data["replication"] = {"copies": n, "locations": locations}
    policy.write_text(yaml.safe_dump(data))


def _a_repository_that_has_lived(tmp_path: Path, collection: Path, server: S3Server,
                                 catalog: str | None = None) -> tuple[Repository, str]:
    repo = _three_location_repo(tmp_path, server, catalog)
    registers = ingest(repo, collection, Metadata("Parish", title="Registers")).aip_id
    publish(repo)  # as each command does when it ends: the log interleaves runs
    scans = tmp_path / "scans"
    scans.mkdir()
    media.bmp(scans / "scan.bmp")
    scan = ingest(repo, scans, Metadata("Harbour", title="Harbour scans",
                                        creators=["Port office"])).aip_id
    publish(repo)
    describe(repo, registers, Description(title="Parish registers, 1890-1920",
                                          note="title corrected"))
    publish(repo)
    assert apply(repo).versions  # the BMP migrated to PNG: a version with a derivation
    publish(repo)
    repo.close()
    _copies(repo, 3, ["local", "disk2", "cloud"])
    repo = Repository(repo.root)
    assert replicate(repo).complete
    publish(repo)
    audit(repo, full=True)
    publish(repo)
    damaged = Path(tmp_path / "disk2" / content_key(registers, 1))
    target = next(p for p in sorted(damaged.rglob("*")) if p.is_file() and "data" in p.parts)
    target.chmod(0o644)
    target.write_bytes(b"rot")
    assert audit(repo, full=True).problems  # found
    assert repair(repo).status == "ok"  # and repaired
    audit(repo)  # a quick one
    publish(repo)  # as every command does when it ends
    return repo, scan


def _tables(catalog: Catalog) -> list[str]:
    return sorted(t for t in catalog.table_names() if t != "alembic_version")


@pytest.fixture
def server():
    s = S3Server()
    yield s
    s.stop()


def test_a_lost_catalog_is_rebuilt_row_for_row(tmp_path, collection, server):
    repo, scan = _a_repository_that_has_lived(tmp_path, collection, server)
    count = {t: repo.catalog.execute(f"SELECT COUNT(*) FROM {t}").scalar()
             for t in ("aips", "versions", "replicas", "derivations", "audit_problems")}
    assert count["derivations"] >= 1 and count["audit_problems"] >= 1
    assert count["replicas"] == 3 * count["versions"]
    repo.close()
    kept = tmp_path / "catalog-before.sqlite"
    shutil.move(repo.root / "catalog.sqlite", kept)

    said = json.loads(run(repo.root, "catalog", "rebuild", "--json").stdout)
    assert said["status"] == "ok", said
    assert (said["aips"], said["versions"], said["replicas"]) == (
        count["aips"], count["versions"], count["replicas"])
    assert said["locations"] == ["cloud", "disk2", "local"]
    diff = json.loads(run(repo.root, "catalog", "diff", kept, "--json",
                          *[a for t in ALLOWED_TO_DIFFER for a in ("--ignore", t)],
                          check_code=None).stdout)
    differing = {t["table"]: t["examples"] for t in diff["tables"] if not t["same"]}
    assert differing == {}
    rebuilt = Repository(repo.root)
    assert _tables(rebuilt.catalog) == _tables(Catalog(kept))
    # the same signed history: its root, and every copy of it, verify
    assert json.loads(run(repo.root, "log", "verify", "--json").stdout)["status"] == "ok"
    assert said["log_root"] == rebuilt.catalog.log_checkpoints()[-1][1]
    # and it is a working catalog: an audit finds every copy as it was
    assert audit(rebuilt, full=True).status == "ok"


def test_a_rebuild_goes_into_an_empty_catalog_or_keeps_the_old_one_aside(tmp_path, collection):
    root = tmp_path / "repo"
    run(root, "init")
    run(root, "ingest", "-c", "Parish", collection)
    refused = run(root, "catalog", "rebuild", check_code=2)
    assert "not empty" in refused.stderr and "--replace" in refused.stderr
    done = json.loads(run(root, "catalog", "rebuild", "--replace", "--json").stdout)
    aside = Path(done["aside"])
    assert aside.name.startswith("catalog.sqlite.before-rebuild-") and aside.is_file()
    assert json.loads(run(root, "catalog", "diff", aside, "--json").stdout)["same"]
    again = json.loads(run(root, "catalog", "rebuild", "--replace", "--json").stdout)
    assert again["aips"] == 1  # twice adds nothing


# -- killed at any moment, run again: the same catalog ----------------------------------------

KILL_POINTS = [("preserve.data.rebuild:prepare", 1),
               ("preserve.catalog.database:Database.create_if_missing", 1),
               ("preserve.data.object_reading:read_object", 1),
               ("preserve.data.object_reading:read_object", 4),
               ("preserve.data.rebuild:_choose", 3),
               ("preserve.data.rebuild:_insert", 1),
               ("preserve.data.rebuild:_insert_log", 1),
               ("preserve.data.rebuild:_count", 1)] + [
    ("preserve.catalog.database:Database.executemany", n) for n in (1, 3, 6, 9, 14, 17, 19)]


@pytest.fixture(scope="module")
def lived(tmp_path_factory):
    """Four AIPs at two disks, audited twice (one damage found and repaired), its catalog
    kept aside: what every kill case rebuilds (the rebuild writes the catalog alone)."""
    tmp = tmp_path_factory.mktemp("lived")
    repo = two_disk_repo(tmp)
    for n in range(4):
        source = tmp / f"source{n}"
        for k in range(3):
            (source / "letters").mkdir(parents=True, exist_ok=True)
            (source / "letters" / f"letter{k}.txt").write_text(f"letter {n}.{k}\n")
        ingest(repo, source, Metadata(f"c{n % 2}", title=f"Box {n}"))
    audit(repo, full=True)
    victim = next((tmp / "disk2").rglob("letter1.txt"))
    victim.chmod(0o644)
    victim.write_text("rot")
    assert repair(repo).status == "ok"
    publish(repo)
    repo.close()
    shutil.copy(repo.root / "catalog.sqlite", tmp / "original.sqlite")
    return repo.root, tmp / "original.sqlite"


@pytest.mark.slow
@pytest.mark.parametrize("target,nth", KILL_POINTS,
                         ids=[f"{t.rsplit(':', 1)[-1]}-{n}" for t, n in KILL_POINTS])
def test_a_rebuild_killed_at_any_moment_ends_the_same_when_run_again(lived, target, nth):
    import os
    import subprocess
    import sys

    root, original = lived
    for leftover in root.glob("catalog.sqlite*"):
        leftover.unlink()
    env = dict(os.environ, PRESERVE_REPO=str(root), PRESERVE_NO_PROGRESS="1")
    killed = subprocess.run([sys.executable, "-m", "tests.killer", target, str(nth),
                             "catalog", "rebuild"], env=env, capture_output=True, text=True,
                            timeout=120)
    assert killed.returncode in (-9, 0), killed.stderr
    listed = run(root, "list", check_code=None)
    if listed.returncode == 0:  # killed once it had finished: whole already
        assert json.loads(run(root, "catalog", "diff", original, "--json").stdout)["same"]
    else:  # a half-rebuilt catalog is never used
        assert listed.returncode == 2 and any(why in listed.stderr for why in (
            "being rebuilt", "no catalog", "holds no preserve catalog")), listed.stderr
        again = json.loads(run(root, "catalog", "rebuild", "--json").stdout)
        assert again["status"] == "ok" and again["aips"] == 4
    assert json.loads(run(root, "catalog", "diff", original, "--json").stdout)["same"]
    twice = json.loads(run(root, "catalog", "rebuild", "--json", check_code=2).stdout)
    assert "not empty" in twice["error"]  # a finished rebuild is not run over


@pytest.mark.storage_left_damaged  # a payload file rots on purpose
def test_locations_that_disagree_are_named_and_the_valid_newest_copy_wins(tmp_path, collection):
    repo = two_disk_repo(tmp_path)
    aip = ingest(repo, collection, Metadata("Parish")).aip_id
    describe(repo, aip, Description(title="Corrected", note="kill the typo"))
    publish(repo)
    repo.close()
    # disk2 is put back as it was before the correction (an old backup restored there)
    obj = tmp_path / "disk2" / content_key(aip, 1).rsplit("/v1", 1)[0]
    for name in ("inventory.json", "inventory.json.sha512"):
        (obj / name).chmod(0o644)
        shutil.copy(obj / "v1" / name, obj / name)
    shutil.rmtree(obj / "v2")

    done = json.loads(run(repo.root, "catalog", "rebuild", "--replace", "--json",
                          check_code=1).stdout)
    assert [(p["kind"], p["location"]) for p in done["problems"]] == [("missing", "disk2")]
    rebuilt = Repository(repo.root)
    assert rebuilt.catalog.get_aip(aip).version == 2  # the newest valid head
    assert rebuilt.catalog.replica_locations(aip, 1) == ["disk2", "local"]
    assert rebuilt.catalog.replica_locations(aip, 2) == ["local"]
    rebuilt.close()

    # a payload file rots at local: only a rebuild that re-hashes (--verify) sees it
    rotten = next(p for p in sorted((tmp_path / "repo" / "aips").rglob("*.txt"))
                  if "/data/" in str(p))
    rotten.chmod(0o644)
    rotten.write_text("rot")
    plain = json.loads(run(repo.root, "catalog", "rebuild", "--replace", "--json",
                           check_code=1).stdout)
    assert [p["kind"] for p in plain["problems"]] == ["missing"]
    verified = json.loads(run(repo.root, "catalog", "rebuild", "--replace", "--verify",
                              "--json", check_code=1).stdout)
    kinds = sorted((p["kind"], p["location"]) for p in verified["problems"])
    assert ("unreadable", "local") in kinds, kinds
    rebuilt = Repository(repo.root)
    assert rebuilt.catalog.replica_locations(aip, 1) == ["disk2"]


def test_a_lost_postgresql_catalog_is_rebuilt_row_for_row(tmp_path, collection, server,
                                                          fresh_database):
    """The same on a shared catalog: its tables dropped, rebuilt into the same database."""
    from preserve.catalog.database import TABLES

    repo, _ = _a_repository_that_has_lived(tmp_path, collection, server, fresh_database)
    kept = tmp_path / "before.sqlite"  # a copy to compare with (catalog diff reads both)
    Catalog.create_if_missing(kept)
    copy = Catalog(kept)
    copy_catalog(repo.catalog, copy)
    copy.close()
    with repo.catalog.transaction() as db:
        for table in sorted(TABLES):
            db.execute(f"DROP TABLE {table} CASCADE")
    repo.close()
    assert "holds no preserve catalog" in run(repo.root, "list", check_code=2).stderr

    said = json.loads(run(repo.root, "catalog", "rebuild", "--json").stdout)
    assert said["status"] == "ok", said
    diff = json.loads(run(repo.root, "catalog", "diff", kept, "--json").stdout)
    assert diff["same"], [t for t in diff["tables"] if not t["same"]]


@given(st.lists(st.text(min_size=1, max_size=30), min_size=1, max_size=5, unique=True),
       st.text(max_size=40))
def test_premis_is_read_back_as_written_by_pattern_and_by_parser(names, note):
    """What a PREMIS file object says comes back exactly, whatever the name or note holds
    (&, <, %, line breaks, characters XML cannot carry), by either reader."""
    import io

    from preserve.data.object_reading import _premis, _premis_parsed
    from preserve.domain.identify import format_notes
    from preserve.domain.premis import FileObject, PremisWriter

    buffer = io.StringIO()
    writer = PremisWriter(buffer, "aip")
    expected = {}
    for n, name in enumerate(names):
        path = f"data/{name}"
        notes = format_notes("text/plain", note or None, None, "signature", None, None)
        writer.write_object(FileObject(path, name, n, {"sha256": "0" * 64}, "x-fmt/111",
                                       f"Plain {note}", None, notes,
                                       ("data/source", "event-1") if n else None))
        expected[path] = ("x-fmt/111", f"Plain {note}", None, "text/plain", note or None,
                          None, "signature", None, None)
    writer.finish([], [])
    for read in (_premis, _premis_parsed):
        identified, sizes, derived = read(buffer.getvalue())
        assert identified == expected
        assert sizes == {f"data/{name}": n for n, name in enumerate(names)}
        assert derived == {f"data/{name}": ("data/source", "event-1")
                           for name in names[1:]}
