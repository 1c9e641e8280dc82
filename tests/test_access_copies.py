"""Access copies (issues 27, 28): a searchable PDF/A of a PDF of scans, made from the AIP,
kept outside it, recorded, remade only when missing or stale."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pikepdf
import pytest
from PIL import Image

from preserve.repository import Repository
from tests.test_cli import run
from tests.test_search import PAGES, render_page

pytestmark = pytest.mark.skipif(shutil.which("tesseract") is None,
                                reason="scripts/setup.sh installs tesseract")


def _text(pdf: Path) -> str:
    return subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True,
                          check=True).stdout


def test_a_pdf_of_scans_gets_a_searchable_pdfa_copy_outside_the_aip(tmp_path):
    sip = tmp_path / "sip"
    sip.mkdir()
    render_page(PAGES["kaz"], tmp_path / "kk.png")
    with Image.open(tmp_path / "kk.png") as page:
        page.save(sip / "book.pdf", resolution=300)  # no text layer
    (sip / "notes.txt").write_text("born digital", encoding="utf-8")
    root = tmp_path / "repo"
    run(root, "init")
    aip = json.loads(run(root, "ingest", "-c", "Books", sip, "--json").stdout)["id"]
    assert "name AIPs" in run(root, "access", "build", check_code=2).stderr
    run(root, "extract", "--all")
    said = json.loads(run(root, "access", "build", "--all", "--json").stdout)
    assert [m["path"] for m in said["made"]] == ["data/book.pdf"]  # not the text file
    assert said["made"][0]["languages"] == ["kaz"]
    copy = root / "access" / aip / "book.pdf"
    with pikepdf.open(copy) as pdf:
        assert pdf.open_metadata().pdfa_status == "2B"
    assert "Қазақстан Республикасының" in _text(copy)
    repo = Repository(root)
    assert repo.catalog.get_aip(aip).version == 2  # the AIP is not changed by its copies
    events = repo.catalog.execute("SELECT detail FROM events WHERE aip_id = ? AND type = "
                                  "'creation'", (aip,)).fetchall()
    assert len(events) == 1 and "searchable PDF/A-2b" in events[0][0]
    again = json.loads(run(root, "access", "build", aip, "--json").stdout)
    assert again["made"] == [] and again["current"] == 1
    # rebuilt from the AIP at any time: the same text
    first = _text(copy)
    shutil.rmtree(root / "access")
    assert len(json.loads(run(root, "access", "build", "--all", "--json").stdout)["made"]) == 1
    assert _text(copy) == first


def test_a_damaged_source_gives_no_copy(tmp_path):
    sip = tmp_path / "sip"
    sip.mkdir()
    render_page(PAGES["eng"], tmp_path / "en.png")
    with Image.open(tmp_path / "en.png") as page:
        page.save(sip / "scan.pdf", resolution=300)
    root = tmp_path / "repo"
    run(root, "init")
    aip = json.loads(run(root, "ingest", "-c", "Books", sip, "--json").stdout)["id"]
    run(root, "extract", "--all")
    repo = Repository(root)
    from preserve.domain import ocfl

    stored = repo.primary_location().local_path(ocfl.object_root(aip)) / "v1" / "content" \
        / "data" / "scan.pdf"
    original = stored.read_bytes()
    stored.write_bytes(original[:-10] + b"0123456789")  # same size, other bytes
    said = run(root, "access", "build", "--all", "--json", check_code=1)
    failed = json.loads(said.stdout)["failed"]
    assert failed and "does not match its recorded sha512" in failed[0]["error"]
    assert not (root / "access" / aip / "scan.pdf").exists()
    stored.write_bytes(original)
