"""Text from every kind of file (issue 27): decoding by declared or detected encoding,
HTML and XML reduced to text, office documents through LibreOffice, OCR languages from
policy, ingest extracting by policy, extract as queued jobs."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from preserve.pipeline.text_extraction import (
    declared_encoding,
    decode,
    extract,
    html_text,
    text_kind,
    xml_text,
)
from preserve.repository import Repository
from tests.test_cli import run
from tests.test_search import PAGES, render_page


def test_text_is_decoded_as_declared_or_as_it_looks(tmp_path):
    russian = "Российская национальная библиотека"
    assert decode(russian.encode("cp1251")) == russian
    assert decode("Қазақстан".encode("utf-16")) == "Қазақстан"  # with its byte order mark
    assert decode("\ufeffƏlyazma".encode("utf-8")) == "Əlyazma"
    assert decode("café".encode("latin-1")) == "café"
    html = '<html><head><meta charset="windows-1251"><title>Т</title></head>'.encode()
    assert declared_encoding(html, "html") == "cp1251"
    xml = b'<?xml version="1.0" encoding="KOI8-R"?><a/>'
    assert declared_encoding(xml, "xml") == "koi8-r"
    assert declared_encoding(b'<?xml version="1.0" encoding="nonsense"?>', "xml") is None


@given(st.binary(max_size=500))
def test_decoding_never_fails(data):
    assert isinstance(decode(data), str)


def test_html_and_xml_give_their_text_only():
    html = ("<html><head><style>p{}</style><script>var x='hidden'</script></head><body>"
            "<h1>Тарих</h1><p>Azərbaycan &amp; Қазақстан</p></body></html>")
    text = html_text(html)
    assert "Тарих" in text and "Azərbaycan & Қазақстан" in text and "hidden" not in text
    assert xml_text(b"<r><t>kitabxana</t><t>library</t></r>").split() == ["kitabxana",
                                                                       "library"]
    assert xml_text(b"<r><unclosed></r>") is None
    assert text_kind("text/html") == "html" and text_kind("image/svg+xml") is None
    assert text_kind("application/pdf; version=1.4") == "pdf"


@pytest.mark.skipif(shutil.which("soffice") is None, reason="scripts/setup.sh installs it")
def test_an_office_document_gives_its_text_through_libreoffice(tmp_path):
    source = tmp_path / "letter.txt"
    source.write_text("Ұлттық кітапхана\nNational library", encoding="utf-8")
    subprocess.run(["soffice", "--headless", "--norestore",
                    f"-env:UserInstallation={(tmp_path / 'lo').as_uri()}", "--convert-to",
                    "odt", "--outdir", str(tmp_path), str(source)], check=True,
                   capture_output=True, timeout=300)
    work = tmp_path / "work"
    work.mkdir()
    done = extract("office", tmp_path / "letter.odt", work,
                   "application/vnd.oasis.opendocument.text")
    assert done.method == "LibreOffice" and "Ұлттық кітапхана" in done.text
    assert done.tools[0][0] == "soffice"


@pytest.mark.skipif(shutil.which("tesseract") is None, reason="scripts/setup.sh installs it")
def test_policy_languages_and_ingest_by_policy(tmp_path):
    sip = tmp_path / "sip"
    sip.mkdir()
    render_page(PAGES["rus"], sip / "page.png")
    root = tmp_path / "repo"
    run(root, "init")
    policy = root / "policies" / "default.yaml"
    data = yaml.safe_load(policy.read_text())
    data["text"] = {"extract": "on", "collections": {"Russian books": ["rus"]}}
    policy.write_text(yaml.safe_dump(data, allow_unicode=True))
    said = json.loads(run(root, "ingest", "-c", "Russian books", sip, "--json").stdout)
    assert said["text"]["pages"] == 1 and said["text"]["extracted"][0]["languages"] == ["rus"]
    repo = Repository(root)
    assert repo.catalog.get_aip(said["id"]).version == 2  # ingest, then its text
    premis = next((root / "aips").rglob("premis-v2.xml")).read_text(encoding="utf-8")
    assert "page 1: rus (policy)" in premis
    found = json.loads(run(root, "search", "библиотека", "--json").stdout)["hits"]
    assert found[0]["path"] == "data/page.png"
    # a model this machine lacks: the file is named with what to install, nothing kept
    data["text"] = {"languages": ["klingon"]}
    policy.write_text(yaml.safe_dump(data, allow_unicode=True))
    (sip / "page2.png").write_bytes((sip / "page.png").read_bytes())
    run(root, "ingest", "-c", "Other", sip)
    said = json.loads(run(root, "extract", "--all", "--json", check_code=1).stdout)
    assert "no model for klingon" in said["failed"][0]["error"]


def test_a_wrong_text_policy_is_named(tmp_path):
    root = tmp_path / "repo"
    run(root, "init")
    policy = root / "policies" / "default.yaml"
    data = yaml.safe_load(policy.read_text())
    data["text"] = {"languages": "kaz"}
    policy.write_text(yaml.safe_dump(data))
    said = run(root, "list", check_code=2)
    assert "text.languages" in said.stderr and "default.yaml" in said.stderr


def test_extract_queued_on_postgresql_is_a_job_per_aip(tmp_path, fresh_database):
    from tests.conftest import two_disk_repo

    repo = two_disk_repo(tmp_path, fresh_database)
    root = repo.root
    repo.close()
    for n in range(2):
        sip = tmp_path / f"sip{n}"
        sip.mkdir()
        (sip / "note.txt").write_text(f"Қазақстан {n}", encoding="utf-8")
        run(root, "ingest", "-c", "Notes", sip)
    queued = json.loads(run(root, "extract", "--all", "--queue", "--json").stdout)
    assert queued["task"] == "extract" and len(queued["jobs"]) == 2
    run(root, "worker", "--once")
    jobs = [j for j in json.loads(run(root, "jobs", "--json").stdout) if j["task"] == "extract"]
    assert sorted(j["status"] for j in jobs) == ["succeeded", "succeeded"], jobs
    found = json.loads(run(root, "search", "Qazaqstan", "--json").stdout)["hits"]
    assert len(found) == 2


def test_an_unreadable_file_is_named_and_tried_again(tmp_path):
    sip = tmp_path / "sip"
    sip.mkdir()
    render_page(PAGES["eng"], tmp_path / "whole.png")
    whole = (tmp_path / "whole.png").read_bytes()
    (sip / "broken.png").write_bytes(whole[:len(whole) // 2])  # a truncated scan
    (sip / "fine.txt").write_text("library", encoding="utf-8")
    root = tmp_path / "repo"
    run(root, "init")
    policy = root / "policies" / "default.yaml"
    data = yaml.safe_load(policy.read_text())
    data["ingest"]["validate"] = "off"
    policy.write_text(yaml.safe_dump(data))
    run(root, "ingest", "-c", "Mixed", sip)
    said = json.loads(run(root, "extract", "--all", "--json", check_code=1).stdout)
    assert [f["path"] for f in said["failed"]] == ["data/broken.png"]
    assert said["extracted"][0]["path"] == "data/fine.txt"
    again = json.loads(run(root, "extract", "--all", "--json", check_code=1).stdout)
    assert again["planned"] == 1  # only the one that failed




def test_an_interrupted_extraction_leaves_nothing_the_next_run_does_not_remove(tmp_path):
    root = tmp_path / "repo"
    run(root, "init")
    dead = subprocess.Popen(["true"])
    dead.wait()  # a pid that has ended
    for name in (f"extract-{dead.pid}-0a1b2c3d", f"access-{dead.pid}-0a1b2c3d"):
        (root / "staging" / name / "kept").mkdir(parents=True)
    said = json.loads(run(root, "check", "--json", check_code=1).stdout)
    found = {(i["kind"], i["detail"].split(" of a ")[-1].split(" whose")[0])
             for i in said["findings"]}
    assert found == {("leftover", "text extraction"), ("leftover", "access copy")}, said
    run(root, "extract", "--all")
    assert sorted((root / "staging").iterdir()) == []
