"""Format validation and virus checks at ingest, and again over what is stored (issue 26):
real good and damaged files (tests/validation_files.py), the real validators in their
sandbox, ClamAV with a signature database made here, PREMIS checked by the schema."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from preserve.domain.file_checks import read_check_rows, validation_event, virus_event
from preserve.domain.premis import PREMIS_NS, event_xml
from preserve.errors import SourceRefused
from preserve.ingest.ingest import Metadata, ingest
from preserve.pipeline import validating
from preserve.pipeline.validators_media import riff_wave_findings
from preserve.planning.formats import report as formats_report
from preserve.planning.validate_files import validate_stored
from preserve.storage.history import publish
from tests.conftest import holds_no_aip, stored_bag
from tests.test_cli import run
from tests.validation_files import EXPECTED, make_files

P = f"{{{PREMIS_NS}}}"
EICAR = (b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*")


def _expected(verdict: str) -> int:
    return sum(1 for v, _ in EXPECTED.values() if v == verdict)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return make_files(tmp_path_factory.mktemp("validation") / "sip")


def _ingest(repo, source: Path, **policy):
    return ingest(repo, source, Metadata("tests", "validation"),
                  policy=replace(repo.policy.ingest, **policy))


def test_every_damaged_file_is_named_and_every_good_one_is_valid(repo, corpus):
    result = _ingest(repo, corpus, virus="off")
    rows = {path: (status, detail) for _v, path, check, status, detail, _t, _w
            in repo.catalog.validations(result.aip_id) if check == "validation"}
    for name, (verdict, word) in EXPECTED.items():
        status, detail = rows[f"data/{name}"]
        assert status == verdict, f"{name}: {status} ({detail})"
        assert word in (detail or ""), f"{name}: {detail!r} lacks {word!r}"
    counts = result.checks["validation"]
    for verdict in ("valid", "invalid", "encrypted"):
        assert counts[verdict] == sum(1 for v, _ in EXPECTED.values() if v == verdict)
    flagged = {f["path"] for f in result.checks["flagged"]}
    assert flagged == {f"data/{n}" for n, (v, _) in EXPECTED.items() if v != "valid"}
    assert len(result.problems()) == counts["invalid"]
    # no finding names the staging folder the file was validated in
    assert not any("staging" in (d or "") for _s, d in rows.values())


def test_each_file_has_a_premis_validation_event_naming_tool_and_outcome(repo, corpus):
    result = _ingest(repo, corpus, virus="off")
    root = ET.parse(stored_bag(repo, result.aip_id) / "metadata" / "premis.xml").getroot()
    per_file = {}
    for event in root.findall(f"{P}event"):
        linked = [v.text for v in event.iter(f"{P}linkingObjectIdentifierValue")]
        if event.findtext(f"{P}eventType") == "validation" and len(linked) == 2:
            per_file[linked[1]] = event
    assert set(per_file) == {f"data/{n}" for n in EXPECTED}
    pdf = per_file["data/broken-xref.pdf"]
    assert pdf.findtext(f".//{P}eventOutcome") == "invalid"
    assert "qpdf" in pdf.findtext(f".//{P}eventDetail")
    assert "xref" in pdf.findtext(f".//{P}eventOutcomeDetailNote")
    agents = {a.findtext(f"{P}agentName") for a in root.findall(f"{P}agent")}
    assert {"libqpdf", "pikepdf", "Pillow", "ffmpeg", "flac"} <= agents
    summary = [e for e in repo.catalog.events(result.aip_id) if e.type == "validation"]
    assert summary[-1].outcome == "failure" and "invalid" in summary[-1].outcome_detail


def test_formats_counts_damaged_files_as_high_risk_and_show_lists_verdicts(repo, corpus,
                                                                           tmp_path):
    result = _ingest(repo, corpus, virus="off")
    rows = formats_report(repo)
    damaged = [r for r in rows if r.rule == "damaged (validation)"]
    assert damaged and all(r.risk == "high" and r.invalid == r.files for r in damaged)
    assert sum(r.invalid for r in rows) == result.checks["validation"]["invalid"]
    assert sum(r.encrypted for r in rows) == _expected("encrypted")
    tiff = [r for r in rows if r.puid == "fmt/353"]
    assert {r.risk for r in tiff if r.invalid} == {"high"}
    assert sum(r.valid for r in tiff) == 1
    shown = json.loads(run(repo.root, "show", result.aip_id, "--json").stdout)
    files = {f["path"]: f["checks"] for f in shown["files_list"]}
    assert files["data/truncated.jpg"]["validation"]["status"] == "invalid"
    assert files["data/good.jpg"]["validation"]["status"] == "valid"


def test_strict_refuses_the_sip_and_stores_nothing(repo, corpus):
    with pytest.raises(SourceRefused, match="strict") as refused:
        _ingest(repo, corpus, validate="strict", virus="off")
    assert any("truncated.jpg" in p and "invalid" in p for p in refused.value.items)
    assert any("encrypted.pdf" in p and "encrypted" in p for p in refused.value.items)
    assert repo.catalog.list_aips() == []
    assert holds_no_aip(repo.primary_location().root)
    assert not [p for p in repo.staging.iterdir() if not p.name.endswith(".lock")]


def test_validation_off_records_nothing(repo, corpus):
    result = _ingest(repo, corpus, validate="off", virus="off")
    assert repo.catalog.validations(result.aip_id) == []
    assert result.checks["validation"] == {"policy": "off", "no validator": result.files}
    assert "validation" not in [e.type for e in repo.catalog.events(result.aip_id)][4:]


def test_a_validator_stopped_on_a_file_leaves_it_not_checked(corpus, monkeypatch, tmp_path):
    """The child is killed past its time: that file is 'not checked' with the reason, and
    the files after it are validated by a new child."""
    monkeypatch.setattr(validating, "SECONDS_PER_FILE", 0.0)
    monkeypatch.setattr(validating, "BYTES_PER_SECOND", 1 << 60)  # no time at all
    items = [validating.Item(str(corpus / n), "image", "image/jpeg", 1, n)
             for n in ("good.jpg", "truncated.jpg")]
    verdicts = validating.validate_paths(items)
    assert {v.status for v in verdicts.values()} == {"not checked"}
    assert all("stopped" in v.findings[0] for v in verdicts.values())


def _bare_path(tmp_path: Path) -> str:
    """A PATH with what preserve's own machinery needs (a shell, the sandbox's tools) and
    none of the validators' tools."""
    bare = tmp_path / "bare-bin"
    bare.mkdir()
    for tool in ("sh", "dash", "prlimit", "setpriv", "unshare", "true", "cat", "kill", "grep"):
        found = shutil.which(tool)
        if found:
            (bare / tool).symlink_to(found)
    return str(bare)


def test_ingest_with_every_validating_tool_missing_says_what_was_not_checked(
        repo, corpus, tmp_path, monkeypatch):
    from preserve.system import tools

    monkeypatch.setenv("PATH", _bare_path(tmp_path))
    tools.tool_version.cache_clear()
    try:
        result = _ingest(repo, corpus)
    finally:
        tools.tool_version.cache_clear()
    rows = {p: (s, d) for _v, p, c, s, d, _t, _w in repo.catalog.validations(result.aip_id)
            if c == "validation"}
    assert rows["data/good.mp4"] == ("not checked",
                                     "ffmpeg is not installed: sound and video are not decoded")
    # PDFs need no program (pikepdf's libqpdf); uncompressed WAV needs no decoding
    assert rows["data/good.pdf"] == ("valid", rows["data/good.pdf"][1])
    assert rows["data/broken-xref.pdf"][0] == "invalid"
    assert rows["data/short-data.wav"][0] == "invalid"
    assert rows["data/good.flac"][0] == "not checked"
    assert result.checks["virus"]["done"] is False
    assert "ClamAV is not installed" in result.checks["virus"]["why_not"]
    virus = [e for e in repo.catalog.events(result.aip_id) if e.type == "virus check"]
    assert [e.outcome for e in virus] == ["not done"]


# -- virus checks -----------------------------------------------------------------------------

@pytest.fixture
def signatures(tmp_path) -> Path:
    """A ClamAV database of one signature, made as an archive makes its own: the MD5 of a
    known file (sigtool --md5)."""
    sample = tmp_path / "eicar.com"
    sample.write_bytes(EICAR)
    made = subprocess.run(["sigtool", "--md5", str(sample)], capture_output=True, text=True,
                          check=True)
    database = tmp_path / "signatures" / "archive.hdb"
    database.parent.mkdir()
    database.write_text(made.stdout)
    return database


def _sip_with_virus(tmp_path: Path) -> Path:
    sip = tmp_path / "sip-virus"
    (sip / "mail").mkdir(parents=True)
    (sip / "mail" / "attachment.com").write_bytes(EICAR)
    (sip / "letter.txt").write_text("Dear archivist,\n")
    return sip


def test_clamav_finds_an_infected_file_and_the_event_names_the_signature(
        repo, tmp_path, signatures):
    result = _ingest(repo, _sip_with_virus(tmp_path), virus_database=str(signatures))
    virus = result.checks["virus"]
    assert virus["done"] and virus["files"] == 2
    assert virus["infected"] == {"mail/attachment.com": "eicar.com.UNOFFICIAL"}
    assert "archive.hdb" in virus["database"]
    rows = [r for r in repo.catalog.validations(result.aip_id) if r[2] == "virus check"]
    assert [(r[1], r[3], r[4]) for r in rows] == [
        ("data/mail/attachment.com", "infected", "eicar.com.UNOFFICIAL")]
    assert result.problems() and "infected" in result.problems()[0]
    premis = (stored_bag(repo, result.aip_id) / "metadata" / "premis.xml").read_text()
    checks = [r for r in read_check_rows(premis) if r.check_type == "virus check"]
    assert checks[0].status == "infected" and "archive.hdb" in checks[0].tools
    summary = [e for e in repo.catalog.events(result.aip_id) if e.type == "virus check"]
    assert summary[0].outcome == "failure" and "1 infected" in summary[0].outcome_detail


def test_virus_strict_refuses_an_infected_sip(repo, tmp_path, signatures):
    with pytest.raises(SourceRefused, match="strict") as refused:
        _ingest(repo, _sip_with_virus(tmp_path), virus="strict",
                virus_database=str(signatures))
    assert any("attachment.com: infected: eicar.com.UNOFFICIAL" in p
               for p in refused.value.items)
    assert repo.catalog.list_aips() == []


def test_old_or_missing_signatures_mean_no_scan_never_a_clean_verdict(repo, tmp_path,
                                                                      signatures):
    old = 30 * 86400
    os.utime(signatures, (signatures.stat().st_atime - old, signatures.stat().st_mtime - old))
    result = _ingest(repo, _sip_with_virus(tmp_path), virus_database=str(signatures))
    assert result.checks["virus"]["done"] is False
    assert "days old" in result.checks["virus"]["why_not"]
    assert not [r for r in repo.catalog.validations(result.aip_id) if r[2] == "virus check"]
    [event] = [e for e in repo.catalog.events(result.aip_id) if e.type == "virus check"]
    assert event.outcome == "not done" and "no file was scanned" in event.detail
    missing = _ingest(repo, _sip_with_virus(tmp_path / "again"),
                      virus_database=str(tmp_path / "nowhere"))
    assert "no ClamAV signature database" in missing.checks["virus"]["why_not"]
    with pytest.raises(SourceRefused, match="strict") as refused:
        _ingest(repo, _sip_with_virus(tmp_path / "strict"), virus="strict",
                virus_database=str(tmp_path / "nowhere"))
    assert "the virus check could not be done" in refused.value.items[0]


# -- again over what is stored ----------------------------------------------------------------

def test_validate_files_checks_stored_aips_and_a_rebuild_gets_the_verdicts_back(
        repo, corpus, tmp_path):
    result = _ingest(repo, corpus, validate="off", virus="off")
    done = validate_stored(repo, [result.aip_id])
    assert done.files == len(EXPECTED) and done.exit_code == 1
    assert done.verdicts["invalid"] == _expected("invalid")
    assert {c.before for c in done.changed} == {None} and len(done.changed) == len(EXPECTED)
    rows = {p: s for _v, p, c, s, *_ in repo.catalog.validations(result.aip_id)}
    assert rows["data/bad-crc.zip"] == "invalid" and rows["data/good.flac"] == "valid"
    [event] = [e for e in repo.catalog.events(result.aip_id) if e.type == "validation"][-1:]
    assert "-validation-" in repo.catalog.event_record_of(event.id)  # its logs/ document
    assert repo.catalog.get_aip(result.aip_id).version == 1  # no new version
    again = validate_stored(repo, [result.aip_id])
    assert again.changed == []  # the same verdicts: nothing changed
    publish(repo)  # the events join the signed log (each command does this as it ends)
    repo.close()
    done = json.loads(run(repo.root, "catalog", "rebuild", "--replace", "--json").stdout)
    diff = json.loads(run(repo.root, "catalog", "diff", done["aside"], "--json").stdout)
    assert diff["same"], diff


@pytest.mark.storage_left_damaged
def test_validate_files_names_a_damaged_copy_instead_of_judging_it(repo, corpus, tmp_path):
    result = _ingest(repo, corpus, validate="off", virus="off")
    stored = stored_bag(repo, result.aip_id) / "data" / "good.png"
    stored.write_bytes(b"not the recorded bytes")
    done = validate_stored(repo, [result.aip_id])
    assert any("good.png" in u for u in done.unreadable)
    assert "data/good.png" not in {p for _v, p, *_ in repo.catalog.validations(result.aip_id)}


# -- parsers ------------------------------------------------------------------------------------

@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_the_wav_chunk_reader_never_fails_on_any_bytes(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("wav") / "x.wav"
    path.write_bytes(b"RIFF" + data[:4] + b"WAVE" + data[4:])
    assert isinstance(riff_wave_findings(str(path)), list)


names = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40)


@settings(max_examples=200, deadline=None)
@given(path=names, findings=st.lists(names.filter(lambda s: "; " not in s), max_size=3),
       status=st.sampled_from(["valid", "invalid", "encrypted", "not checked"]),
       tools=st.lists(st.sampled_from(["qpdf 11.3.0", "Pillow 13.0.0", "ffmpeg 5.1-0+d"]),
                      max_size=2, unique=True))
def test_a_check_event_reads_back_as_the_row_it_was_written_from(path, findings, status,
                                                                 tools):
    """What the catalog records and what a rebuild reads from PREMIS are one row."""
    event = validation_event("data/" + path, status, findings, tools, "decoded (whole)",
                             "2026-12-04T00:00:00Z", "preserve-1")
    [row] = read_check_rows(event_xml(event, "aip"))
    assert (row.path, row.status, row.tools) == ("data/" + path, status, ", ".join(tools))
    assert row.detail == ("; ".join(findings) or "decoded (whole)")
    virus = virus_event("data/" + path, "infected", "Eicar-Sig", "ClamAV 1.4; sigs", "t")
    [vrow] = read_check_rows(event_xml(virus, "aip"))
    assert (vrow.status, vrow.detail, vrow.tools) == ("infected", "Eicar-Sig", "ClamAV 1.4; sigs")


def test_validate_files_queued_on_postgresql_is_a_job_per_aip(tmp_path, corpus,
                                                              fresh_database):
    """--queue: one job per AIP; a worker runs them; the verdicts land in the shared
    catalog as they would from the command."""
    from tests.conftest import two_disk_repo

    repo = two_disk_repo(tmp_path, fresh_database)
    policy = replace(repo.policy.ingest, validate="off", virus="off")
    aips = [ingest(repo, source, Metadata("c", f"box {n}"), policy=policy).aip_id
            for n, source in enumerate((corpus, corpus))]
    repo.close()
    queued = json.loads(run(repo.root, "validate-files", "--all", "--queue", "--json").stdout)
    assert queued["task"] == "validate-files" and len(queued["jobs"]) == 2
    run(repo.root, "worker", "--once")
    jobs = [j for j in json.loads(run(repo.root, "jobs", "--json").stdout)
            if j["task"] == "validate-files"]
    assert sorted(j["status"] for j in jobs) == ["succeeded", "succeeded"], jobs
    from preserve.repository import Repository

    repo = Repository(repo.root)
    try:
        for aip in aips:
            verdicts = repo.catalog.validation_counts(aip)
            assert verdicts["valid"] == _expected("valid")
            assert verdicts["encrypted"] == _expected("encrypted")
    finally:
        repo.close()


def test_the_command_stores_marked_files_exits_0_and_says_so_in_red(repo, corpus):
    """Policy `on`: the ingest did what was asked (exit 0), and says how many damaged
    files it stored; `strict` is how a cron job stops on them (exit 1)."""
    done = run(repo.root, "ingest", corpus, "-c", "tests")
    assert f"{_expected('invalid')} damaged or infected file(s) stored" in done.stdout
    assert "Files marked at ingest" in done.stdout
    policy = repo.root / "policies" / "default.yaml"
    policy.write_text(policy.read_text().replace("  validate: on", "  validate: strict"))
    refused = run(repo.root, "ingest", corpus, "-c", "tests", check_code=1)
    assert "refused by policy (strict)" in refused.stdout + refused.stderr
