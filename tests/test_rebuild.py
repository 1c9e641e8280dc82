"""The catalog rebuilt from storage alone (issue 24): a repository that has ingested,
described, migrated, replicated to a second disk and to S3, audited (damage found and
repaired), loses its catalog; `catalog rebuild` brings back every table, row for row."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

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
from tests.conftest import content_key
from tests.s3server import S3Server
from tests.test_cli import run

# Columns (TABLE.COLUMN) a rebuilt catalog may hold other values in, and why: none. (The
# job_results of a PostgreSQL catalog's queue are not kept in storage; no job runs here.)
ALLOWED_TO_DIFFER: dict[str, str] = {}


def _three_location_repo(tmp_path: Path, server: S3Server, catalog: str | None = None
                         ) -> Repository:
    repo, _ = Repository.init(tmp_path / "repo", catalog)
    repo.close()
    server.client().create_bucket(Bucket="rebuild")
    (tmp_path / "disk2").mkdir()
    (repo.root / "locations" / "disk2.yaml").write_text(yaml.safe_dump(
        {"name": "disk2", "kind": "local", "path": str(tmp_path / "disk2")}))
    (repo.root / "locations" / "cloud.yaml").write_text(yaml.safe_dump({
        "name": "cloud", "kind": "s3", "bucket": "rebuild", "prefix": "preserve",
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
    scans = tmp_path / "scans"
    scans.mkdir()
    media.bmp(scans / "scan.bmp")
    scan = ingest(repo, scans, Metadata("Harbour", title="Harbour scans",
                                        creators=["Port office"])).aip_id
    describe(repo, registers, Description(title="Parish registers, 1890-1920",
                                          note="title corrected"))
    assert apply(repo).versions  # the BMP migrated to PNG: a version with a derivation
    repo.close()
    _copies(repo, 3, ["local", "disk2", "cloud"])
    repo = Repository(repo.root)
    assert replicate(repo).complete
    audit(repo, full=True)
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
