"""The health report (issue 25): its figures are those of `list`, `audit` and `formats`;
its NDSA cells follow the evidence; the same catalog gives the same bytes; the HTML opens
in a real browser with no request leaving the file, and the PDF has the same sections."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
import yaml

from preserve.ingest.ingest import Metadata, ingest
from preserve.repository import Repository
from tests.test_cli import run

SECTIONS = ("Repository health", "NDSA Levels of Digital Preservation v2.0", "Holdings",
            "Copies and media", "Verification", "Restore drills", "Formats", "Event log")


@pytest.fixture
def lived(tmp_path, collection):
    """Three AIPs in two collections, one described, audited, drilled."""
    repo, _ = Repository.init(tmp_path / "repo")
    for n in range(3):
        ingest(repo, collection, Metadata(f"coll{n % 2}", title=f"Box {n}" if n else None))
    repo.close()
    run(repo.root, "audit", "--full")
    run(repo.root, "drill", "--sample", "1")
    return repo.root


def _cell(facts, area, level, activity):
    cell = next(c for c in facts["ndsa"] if c["area"] == area and c["level"] == level)
    return next(a for a in cell["activities"] if a["activity"] == activity)


def test_the_reports_figures_are_those_of_list_audit_and_formats(lived):
    facts = json.loads(run(lived, "report", "--json").stdout)
    listed = json.loads(run(lived, "list", "--json").stdout)
    assert facts["holdings"]["aips"] == len(listed)
    assert facts["holdings"]["files"] == sum(a["files"] for a in listed)
    assert facts["holdings"]["bytes"] == sum(a["bytes"] for a in listed)
    assert {c["name"]: c["aips"] for c in facts["holdings"]["collections"]} == {
        "coll0": 2, "coll1": 1}
    assert facts["formats"]["rows"] == json.loads(run(lived, "formats", "--json").stdout)
    audited = json.loads(run(lived, "audit", "--full", "--json").stdout)
    facts = json.loads(run(lived, "report", "--json").stdout)
    newest = facts["integrity"]["audits"][0]
    assert newest["run"] == audited["run"] and newest["files"] == audited["files"]
    assert facts["integrity"]["open_problems"] == len(audited["problems"]) == 0
    assert facts["integrity"]["coverage"]["share"] == 1.0
    assert facts["integrity"]["drills"]["count"] == 1 and facts["integrity"]["drills"][
        "failed"] == 0
    drill = facts["integrity"]["drills"]["recent"][0]
    assert drill["outcome"] == "success" and "OCFL object valid (ocfl-py)" in drill[
        "outcome_detail"]
    assert facts["copies"]["per_version"] == {"1": 3}
    assert _cell(facts, "metadata", 2, "Enough metadata to know what the content is")[
        "evidence"].endswith("2 of 3")


def test_the_same_catalog_gives_the_same_bytes(lived, tmp_path):
    first = run(lived, "report", "--json").stdout
    run(lived, "report", "--html", tmp_path / "a.html")
    assert run(lived, "report", "--json").stdout == first
    run(lived, "report", "--html", tmp_path / "b.html")
    assert (tmp_path / "a.html").read_bytes() == (tmp_path / "b.html").read_bytes()
    shown = run(lived, "report").stdout
    assert "NDSA Levels" in shown and "Audit coverage" in shown
    refused = run(lived, "report", "--html", tmp_path / "nowhere" / "r.html", check_code=2)
    assert "does not exist" in refused.stderr and not (tmp_path / "nowhere").exists()


def test_ndsa_cells_move_as_the_evidence_changes(lived, tmp_path):
    facts = json.loads(run(lived, "report", "--json").stdout)
    two = "Two complete copies in separate locations"
    away = "At least one copy in a separate geographic location"
    assert _cell(facts, "storage", 1, two)["status"] == "not met"
    assert _cell(facts, "storage", 2, away)["status"] == "not met"
    # a second location, at another site, in the policy: every AIP replicated there
    (tmp_path / "offsite").mkdir()
    run(lived, "storage", "add", "offsite", tmp_path / "offsite")
    file = lived / "locations" / "offsite.yaml"
    file.write_text(file.read_text() + "site: Shymkent branch\n")
    policy = lived / "policies" / "default.yaml"
    data = yaml.safe_load(policy.read_text())
    data["replication"] = {"copies": 2, "locations": ["local", "offsite"]}
    policy.write_text(yaml.safe_dump(data))
    run(lived, "replicate")
    facts = json.loads(run(lived, "report", "--json").stdout)
    assert _cell(facts, "storage", 1, two)["status"] == "met"
    assert _cell(facts, "storage", 2, away)["status"] == "met"
    assert facts["copies"]["places_per_version"] == {"2": 3}
    # a medium past its service life moves the storage L4 obsolescence cell, and the exit
    data = yaml.safe_load(file.read_text())
    data["commissioned"] = "2010-01-01"
    file.write_text(yaml.safe_dump(data))
    aged = json.loads(run(lived, "report", "--json", check_code=1).stdout)
    assert _cell(aged, "storage", 4, "Plan and execute actions against storage obsolescence")[
        "status"] == "not met"


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium")
def test_the_html_report_in_a_real_browser_and_the_pdf(lived, tmp_path):
    from playwright.sync_api import sync_playwright

    page_file = tmp_path / "report.html"
    pdf_file = tmp_path / "report.pdf"
    run(lived, "report", "--html", page_file, "--pdf", pdf_file)
    requests, errors = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"])
        try:
            for width in (1280, 390):  # a desk and a phone
                page = browser.new_page(viewport={"width": width, "height": 900})
                page.on("request", lambda r: requests.append(r.url))
                page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
                page.on("pageerror", lambda e: errors.append(str(e)))
                page.goto(page_file.as_uri())
                page.wait_for_load_state("load")
                for section in SECTIONS:
                    assert page.get_by_text(section, exact=True).first.is_visible(), section
                scroll = page.evaluate("document.documentElement.scrollWidth")
                assert scroll <= width + 1, f"wider than the screen: {scroll} > {width}"
                page.screenshot(path=str(tmp_path / f"report-{width}.png"), full_page=True)
                page.close()
        finally:
            browser.close()
    assert set(requests) == {page_file.as_uri()}, requests  # nothing leaves the file
    assert errors == []
    assert (tmp_path / "report-390.png").stat().st_size > 10_000
    text = subprocess.run(["pdftotext", str(pdf_file), "-"], capture_output=True, text=True,
                          check=True).stdout
    for section in SECTIONS:
        assert section in text, section
