"""Media that age out (issue 25): each location's medium against its expected service
life, and the AIP versions that depend on it, said by `storage list`."""

from __future__ import annotations

import datetime as dt
import json

import yaml

from preserve.ingest.ingest import Metadata, ingest
from preserve.repository import Repository
from tests.conftest import two_disk_repo
from tests.test_cli import run


def _edit(path, **changes) -> None:
    data = yaml.safe_load(path.read_text())
    data.update(changes)
    path.write_text(yaml.safe_dump(data))


def test_storage_list_warns_of_ageing_media_and_copies_that_depend_on_one(tmp_path,
                                                                          collection):
    repo = two_disk_repo(tmp_path)
    ingest(repo, collection, Metadata("Parish"))  # at both disks
    repo.close()
    policy = repo.root / "policies" / "default.yaml"
    data = yaml.safe_load(policy.read_text())
    data["replication"] = {"copies": 1, "locations": ["local"]}
    policy.write_text(yaml.safe_dump(data))
    repo = Repository(repo.root)
    ingest(repo, collection, Metadata("Later"))  # at local alone
    repo.close()
    data["replication"] = {"copies": 2, "locations": ["local", "disk2"]}
    policy.write_text(yaml.safe_dump(data))
    bought = (dt.date.today() - dt.timedelta(days=int(6 * 365.25))).isoformat()
    _edit(repo.root / "locations" / "disk2.yaml", media="hdd", commissioned=bought)

    said = {s["name"]: s for s in json.loads(run(repo.root, "storage", "list", "--json").stdout)}
    disk2, local = said["disk2"], said["local"]
    assert disk2["expected_lifetime_years"] == 5 and disk2["age_years"] == 6.0
    assert any("past its expected service life (6 of 5 years)" in w for w in disk2["warnings"])
    assert (disk2["sole_copies"], disk2["below_policy"]) == (0, 0)
    assert (local["sole_copies"], local["below_policy"]) == (1, 1)
    assert any("1 AIP version(s) have their only verified copy here" in w
               for w in local["warnings"])
    assert disk2["smart"] == "unknown" and disk2["free_bytes"] > 0
    assert local["oldest_verified"] and disk2["oldest_verified"]  # when last verified whole

    # every audit says the same of the locations it read
    audited = json.loads(run(repo.root, "audit", "--json").stdout)
    assert audited["media_warnings"]["disk2"] == disk2["warnings"]
    assert audited["media_warnings"]["local"] == local["warnings"]
    assert "past its expected service life" in run(repo.root, "audit").stdout

    # the policy's service life for the medium, and when to warn, are the archive's own
    data["media"] = {"service_life_years": {"hdd": 10}, "warn_at": 0.5}
    policy.write_text(yaml.safe_dump(data))
    said = {s["name"]: s for s in json.loads(run(repo.root, "storage", "list", "--json").stdout)}
    assert said["disk2"]["warnings"] == ["6 of its 10 years of expected service life: plan "
                                         "its replacement"]
    shown = run(repo.root, "storage", "list").stdout
    assert "disk2" in shown and "plan its replacement" in shown
    data["media"] = {"warn_at": 2}
    policy.write_text(yaml.safe_dump(data))
    refused = run(repo.root, "storage", "list", check_code=2)
    assert "media.warn_at" in refused.stderr
