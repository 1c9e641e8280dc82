"""The command line as scripts and monitors use it: JSON shapes and exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import assert_bagit_python_valid, content_key, object_key


def run(repo: Path, *args, check_code: int | None = 0,
        input: str | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, PRESERVE_REPO=str(repo), PRESERVE_NO_PROGRESS="1")
    proc = subprocess.run([sys.executable, "-m", "preserve", *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=120, input=input)
    if check_code is not None:
        assert proc.returncode == check_code, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    return proc


@pytest.fixture
def cli_repo(tmp_path) -> Path:
    root = tmp_path / "repo"
    run(root, "init")
    return root


@pytest.mark.sqlite_catalog  # reads the SQLite file itself
def test_init_is_idempotent_and_reports_what_it_created(tmp_path):
    root = tmp_path / "r"
    first = json.loads(run(root, "init", "--json").stdout)
    assert any(c.endswith("catalog.sqlite") for c in first["created"])
    second = json.loads(run(root, "init", "--json").stdout)
    assert second["created"] == []


def test_ingest_list_show_export_round_trip(cli_repo, collection, tmp_path):
    out = json.loads(run(cli_repo, "ingest", collection, "--collection", "letters", "--title",
                         "Letters", "--creator", "A", "--json").stdout)
    aip = out["id"]
    assert out["aip_id"] == aip
    assert out["files"] == 10 and out["collection"] == "letters"
    assert out["throughput_bytes_per_second"] >= 0

    listed = json.loads(run(cli_repo, "list", "--json").stdout)
    assert [(a["id"], a["collection"], a["files"], a["bytes"]) for a in listed] == [
        (aip, "letters", 10, out["bytes"])]

    shown = json.loads(run(cli_repo, "show", aip[:8], "--json").stdout)
    assert shown["id"] == aip and len(shown["files_list"]) == 10
    assert {e["type"] for e in shown["events"]} >= {"ingestion", "format identification"}
    assert any(f["puid"] == "fmt/11" for f in shown["formats"])

    dest = tmp_path / "exported"
    run(cli_repo, "export", aip, dest)
    assert (dest / "data" / "empty-folder").is_dir()
    assert_bagit_python_valid(dest)
    assert run(cli_repo, "validate", dest).returncode == 0

    human = run(cli_repo, "show", aip).stdout
    assert "Events" in human and "fmt/11" in human


@pytest.mark.storage_left_damaged
def test_export_refuses_a_tampered_replica_and_writes_nothing(cli_repo, collection, tmp_path):
    aip = json.loads(run(cli_repo, "ingest", collection, "-c", "x", "--json").stdout)["aip_id"]
    bag = cli_repo / "aips" / content_key(aip)
    target = bag / "data" / "docs" / "notes.txt"
    target.write_text("Field notes, 1924.\n")  # same length, different bytes
    dest = tmp_path / "out"
    proc = run(cli_repo, "export", aip, dest, check_code=1)
    assert "did not verify" in proc.stderr and "notes.txt" in proc.stderr
    assert not dest.exists() and not list(tmp_path.glob("out.partial*"))


def test_validate_exit_codes_and_json(cli_repo, tmp_path):
    bag = tmp_path / "bag"
    bag.mkdir()
    (bag / "bagit.txt").write_text("BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n")
    proc = run(cli_repo, "validate", bag, "--json", check_code=1)
    report = json.loads(proc.stdout)
    assert report["valid"] is False
    assert {f["code"] for f in report["findings"]} == {"E020", "E040"}
    assert run(cli_repo, "validate", tmp_path / "nope", check_code=1)


def test_identify_json_contract(cli_repo, collection):
    rows = json.loads(run(cli_repo, "identify", collection / "images",
                          collection / "docs" / "report.pdf", "--json").stdout)
    assert [(Path(r["path"]).name, r["puid"], r["mime"]) for r in rows] == [
        ("photo.png", "fmt/11", "image/png"), ("report.pdf", "fmt/18", "application/pdf")]
    assert {"path", "puid", "format", "mime"} <= set(rows[0])


def test_user_errors_are_messages_with_exit_codes_not_tracebacks(tmp_path, collection):
    missing = tmp_path / "no-repo"
    proc = run(missing, "list", check_code=2)
    assert "preserve init" in proc.stderr
    repo = tmp_path / "repo"
    run(repo, "init")
    proc = run(repo, "ingest", tmp_path / "does-not-exist", "-c", "x", check_code=1)
    assert "does not exist" in proc.stderr
    proc = run(repo, "show", "zzzzzzzz", check_code=2)
    assert "no AIP" in proc.stderr
    proc = run(repo, "ingest", collection, check_code=2)  # --collection is required
    assert "collection" in proc.stderr.lower()
    (repo / "policies" / "default.yaml").write_text("fixity:\n  manifest_algorithms: [md4]\n")
    proc = run(repo, "list", check_code=2)
    assert "default.yaml" in proc.stderr and "manifest_algorithms" in proc.stderr


def test_refused_source_lists_every_problem(cli_repo, tmp_path):
    src = tmp_path / "s"
    src.mkdir()
    (src / "a").symlink_to("/etc/passwd")
    (src / "b").symlink_to("/etc/hostname")
    proc = run(cli_repo, "ingest", src, "-c", "x", check_code=1)
    assert "a -> /etc/passwd" in proc.stderr and "b -> /etc/hostname" in proc.stderr
    assert "nothing was written" in proc.stderr


def test_export_takes_only_a_real_version_and_a_real_folder_outside_the_repository(
        cli_repo, tmp_path):
    """Red team 2026-12 cases 29, 30, 31: --version 0 exported the latest version; a DEST
    that is a link was an internal error; DEST in the storage root, in an object's next
    version folder or in staging/ was accepted (and the staging one later removed by
    check --fix as debris)."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("a\n")
    aip = json.loads(run(cli_repo, "ingest", src, "-c", "c", "--json").stdout)["id"]
    for bad in ("0", "-1", "2", "abc"):
        done = run(cli_repo, "export", aip, tmp_path / f"v{bad}", "--version", bad,
                   check_code=2)
        assert not (tmp_path / f"v{bad}").exists(), done.stderr
    (tmp_path / "empty").mkdir()
    for name, target in (("to-empty", tmp_path / "empty"), ("dangling", tmp_path / "nowhere"),
                         ("into-storage", cli_repo / "aips")):
        (tmp_path / name).symlink_to(target)
        done = run(cli_repo, "export", aip, tmp_path / name, check_code=2)
        assert "is a symbolic link" in done.stderr
    obj = cli_repo / "aips" / object_key(aip)
    for dest in (cli_repo / "aips" / "restored", obj / "v2", cli_repo / "staging" / "x",
                 cli_repo / "elsewhere"):
        done = run(cli_repo, "export", aip, dest, check_code=2)
        assert "an export goes outside what preserve keeps" in done.stderr
        assert not dest.exists()
    (tmp_path / "a-file").write_text("x\n")
    done = run(cli_repo, "export", aip, tmp_path / "a-file" / "out", check_code=2)
    assert "is a file, not a folder" in done.stderr
    done = run(cli_repo, "export", aip, "/proc/out", check_code=3)
    assert "is no place for files" in done.stderr
    run(cli_repo, "export", aip, tmp_path / "out")  # and outside, as ever
    run(cli_repo, "describe", aip, "--title", "still writable")


def test_text_that_is_not_utf8_is_refused_and_nothing_is_kept(cli_repo, tmp_path):
    """Case 26: bytes of another encoding in --title, --creator or -c were an internal
    error (exit 3) at the first write."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("a\n")
    aip = json.loads(run(cli_repo, "ingest", src, "-c", "c", "--json").stdout)["id"]
    env = dict(os.environ, PRESERVE_REPO=str(cli_repo), PRESERVE_NO_PROGRESS="1")
    for args in ([b"describe", aip.encode(), b"--title", b"caf\xe9"],
                 [b"describe", aip.encode(), b"--title", b"ok", b"--note", b"M\xfcller"],
                 [b"ingest", bytes(src), b"-c", b"c", b"--creator", b"M\xfcller"],
                 [b"ingest", bytes(src), b"-c", b"coll\xff"]):
        done = subprocess.run([sys.executable.encode(), b"-m", b"preserve", *args], env=env,
                              capture_output=True, timeout=120)
        assert done.returncode == 2 and b"is not valid UTF-8" in done.stderr, done.stderr
        assert b"Traceback" not in done.stderr
    listed = json.loads(run(cli_repo, "list", "--json").stdout)
    assert len(listed) == 1 and listed[0]["version"] == 1


def test_version_alone_prints_the_version():
    done = subprocess.run([sys.executable, "-m", "preserve", "--version"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.startswith("preserve ")


def test_show_gives_the_description_and_summarises_events(cli_repo, tmp_path):
    """Issue 22: show gave no creator, rights or identifiers (not even in --json) and
    listed every event ever (425 lines after 15 audits)."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("a\n")
    aip = json.loads(run(cli_repo, "ingest", src, "-c", "c", "--creator", "County Archive",
                         "--json").stdout)["id"]
    run(cli_repo, "describe", aip, "--rights", "Public domain", "--identifier", "ark:/1/2")
    for _ in range(3):
        run(cli_repo, "audit")
    shown = json.loads(run(cli_repo, "show", aip, "--json").stdout)
    assert shown["description"] == {"Creator": ["County Archive"], "Rights": ["Public domain"],
                                    "External-Identifier": ["ark:/1/2"]}
    checks = len([e for e in shown["events"] if e["type"] == "fixity check"])
    assert checks == 6  # each audit checks both versions' replicas
    text = run(cli_repo, "show", aip).stdout
    assert "County Archive" in text and "Public domain" in text and "ark:/1/2" in text
    assert text.count("fixity check") == 1 and "--events lists all" in text
    assert run(cli_repo, "show", aip, "--events").stdout.count("fixity check") == checks


def test_content_held_already_is_named_and_can_be_refused(cli_repo, tmp_path):
    """Issue 22: the same folder ingested twice silently made two AIPs, and untitled AIPs
    could not be told apart in `list`."""
    src = tmp_path / "registers"
    src.mkdir()
    (src / "a.txt").write_text("a\n")
    first = json.loads(run(cli_repo, "ingest", src, "-c", "c", "--json").stdout)
    assert first["duplicate_of"] == []
    second = json.loads(run(cli_repo, "ingest", src, "-c", "d", "--json").stdout)
    assert second["duplicate_of"] == [first["id"]]
    done = run(cli_repo, "ingest", src, "-c", "e", "--refuse-duplicate", check_code=2)
    assert "holds the same content as AIP" in done.stderr and first["id"] in done.stderr
    assert len(json.loads(run(cli_repo, "list", "--json").stdout)) == 2
    (src / "a.txt").rename(src / "b.txt")  # other names: other content
    assert json.loads(run(cli_repo, "ingest", src, "-c", "f", "--refuse-duplicate",
                          "--json").stdout)["duplicate_of"] == []
    assert "(registers)" in run(cli_repo, "list").stdout


def test_a_failure_under_json_is_a_json_document_too(cli_repo):
    """Issue 22: errors under --json were plain text only; a script reads stdout."""
    done = run(cli_repo, "show", "zzzzzz", "--json", check_code=2)
    said = json.loads(done.stdout)
    assert said["status"] == "error" and "zzzzzz" in said["error"] and said["exit_code"] == 2
    assert "error:" in done.stderr
