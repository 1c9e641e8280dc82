"""Rights as data (issue 28): the decision on both sides of every date, statements kept in
PREMIS and rebuilt from it, export refused or overridden on the record, search snippets
withheld."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from lxml import etree

from preserve.domain.premis import read_rights, rights_xml
from preserve.domain.rights import (
    RightsPolicy,
    RightsStatement,
    check_statement,
    decide,
    opening_day,
)
from preserve.repository import Repository
from tests.conftest import PREMIS_XSD as SCHEMA
from tests.test_cli import run

OPEN = RightsPolicy()
D = dt.date.fromisoformat


def _copyrighted(**kw) -> RightsStatement:
    return RightsStatement("copyrighted", **kw)


@pytest.mark.parametrize("counting, day_before, day", [
    ("year-end", "2025-12-31", "2026-01-01"), ("exact", "2025-05-31", "2025-06-01")])
def test_a_term_opens_on_its_day_and_not_the_day_before(counting, day_before, day):
    s = _copyrighted(opens_after_years=75, from_date="1950-06-01", counting=counting)
    before = decide(s, {}, OPEN, D(day_before))
    assert not before.open and before.opens_on == day
    assert decide(s, {}, OPEN, D(day)).open


def test_a_leap_day_counts_to_the_first_of_march_in_a_year_without_one():
    assert opening_day(D("1948-02-29"), 75, "exact") == D("2023-03-01")
    assert opening_day(D("1948-02-29"), 76, "exact") == D("2024-02-29")
    assert opening_day(D("1948-02-29"), 75) == D("2024-01-01")
    s = _copyrighted(opens_after_years=75, from_date="1948-02-29", counting="exact")
    assert not decide(s, {}, OPEN, D("2023-02-28")).open
    assert decide(s, {}, OPEN, D("2023-03-01")).open


def test_a_missing_or_unreadable_date_keeps_it_closed():
    s = _copyrighted(opens_after_years=75, from_field="Creator-Death-Date")
    for fields in ({}, {"Creator-Death-Date": ["unknown"]}, {"Creator-Death-Date": [""]}):
        decided = decide(s, fields, OPEN, D("2200-01-01"))
        assert not decided.open and decided.opens_on is None
    found = decide(s, {"Creator-Death-Date": ["1940-03-02"]}, OPEN, D("2016-01-01"))
    assert found.open and "bag-info Creator-Death-Date" in " ".join(found.chain)


def test_an_embargo_ends_and_outlasts_what_else_would_open_it():
    s = RightsStatement("public-domain", embargo_until="2027-01-01")
    closed = decide(s, {}, OPEN, D("2026-12-31"))
    assert not closed.open and closed.opens_on == "2027-01-01"
    assert decide(s, {}, OPEN, D("2027-01-01")).open
    later = _copyrighted(opens_after_years=10, from_date="2020-01-01",
                         embargo_until="2025-06-01")
    assert decide(later, {}, OPEN, D("2026-01-01")).opens_on == "2031-01-01"


def test_unknown_status_no_term_and_no_statement():
    assert not decide(RightsStatement("unknown"), {}, OPEN, D("2300-01-01")).open
    never = decide(_copyrighted(), {}, OPEN, D("2300-01-01"))
    assert not never.open and never.opens_on is None
    assert decide(None, {}, OPEN, D("2026-01-01")).open
    assert not decide(None, {}, RightsPolicy("closed"), D("2026-01-01")).open
    policy = RightsPolicy("closed", 75, "Creator-Death-Date")
    assert decide(_copyrighted(), {"Creator-Death-Date": ["1900-01-01"]}, policy,
                  D("2026-01-01")).open


@given(st.dates(min_value=dt.date(1600, 1, 1), max_value=dt.date(2100, 12, 31)),
       st.integers(1, 120), st.sampled_from(["year-end", "exact"]),
       st.dates(min_value=dt.date(1600, 1, 1), max_value=dt.date(2300, 12, 31)))
def test_closed_until_the_day_it_says_then_open(start, years, counting, today):
    s = _copyrighted(opens_after_years=years, from_date=start.isoformat(), counting=counting)
    decided = decide(s, {}, OPEN, today)
    if decided.open:
        assert today >= opening_day(start, years, counting)
    else:
        opens = D(decided.opens_on)
        assert today < opens and decide(s, {}, OPEN, opens).open
        assert not decide(s, {}, OPEN, opens - dt.timedelta(days=1)).open


def test_statements_are_checked_before_they_are_recorded():
    assert check_statement(RightsStatement("copyrighted")) == []
    assert check_statement(RightsStatement("maybe"))
    assert check_statement(_copyrighted(opens_after_years=75))  # from what?
    assert check_statement(_copyrighted(embargo_until="2026-13-01"))
    assert check_statement(RightsStatement("licensed"))  # which licence?


@pytest.mark.parametrize("statement", [
    RightsStatement("copyrighted", "Heirs & Co <kz>", "kz", "Law 6-I, art. 28", None,
                    "2030-01-01", 75, None, "Creator-Death-Date", "exact", "100% sure",
                    recorded="2026-12-04T10:00:00Z", recorded_by="archivist"),
    RightsStatement("licensed", license="https://creativecommons.org/licenses/by/4.0/"),
    RightsStatement("public-domain"), RightsStatement("unknown")])
def test_premis_rights_are_schema_valid_and_read_back_exactly(statement, tmp_path):
    doc = ('<premis:premis xmlns:premis="http://www.loc.gov/premis/v3" version="3.0">'
           '<premis:object xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
           'xsi:type="premis:intellectualEntity"><premis:objectIdentifier>'
           '<premis:objectIdentifierType>UUID</premis:objectIdentifierType>'
           '<premis:objectIdentifierValue>a</premis:objectIdentifierValue>'
           '</premis:objectIdentifier></premis:object>'
           + rights_xml(statement, "a") + "</premis:premis>")
    schema = etree.XMLSchema(etree.parse(str(SCHEMA)))
    assert schema.validate(etree.fromstring(doc.encode())), schema.error_log
    assert read_rights(doc) == [statement]


# -- end to end ---------------------------------------------------------------------------

@pytest.fixture
def closed_aip(tmp_path, collection) -> tuple[Path, str]:
    root = tmp_path / "repo"
    run(root, "init")
    said = json.loads(run(root, "ingest", "-c", "Letters", "--title", "Letters of 1923",
                          collection, "--json").stdout)
    recorded = json.loads(run(root, "rights", said["id"], "--status", "copyrighted",
                              "--jurisdiction", "kz", "--opens-after", "75", "--from-date",
                              "2000-01-01", "--note", "the author died in 2000",
                              "--json").stdout)
    assert recorded["version"] == 2 and recorded["decision"]["open"] is False
    assert recorded["decision"]["opens_on"] == "2076-01-01"
    return root, said["id"]


def test_rights_are_recorded_explained_and_obeyed(closed_aip, tmp_path):
    root, aip = closed_aip
    explained = json.loads(run(root, "rights", "explain", aip, "--json").stdout)
    assert explained["open"] is False and "2076-01-01" in explained["chain"][-1]
    assert json.loads(run(root, "rights", "explain", aip, "--on", "2076-01-01",
                          "--json").stdout)["open"] is True
    said = run(root, "rights", "explain", aip)
    assert "closed" in said.stdout and "75 years from 2000-01-01" in said.stdout

    refused = run(root, "export", aip, tmp_path / "out", check_code=1)
    assert "closed by its rights" in refused.stderr and "--override-rights" in refused.stderr
    assert not (tmp_path / "out").exists()  # not a byte written
    done = run(root, "export", aip, tmp_path / "out", "--override-rights",
                "the heirs' written consent of 2026-12-01", "--json")
    assert json.loads(done.stdout)["files"] > 0
    repo = Repository(root)
    events = [r for r in repo.catalog.execute(
        "SELECT type, detail, outcome_detail FROM events WHERE aip_id = ? AND type = "
        "'dissemination'", (aip,))]
    assert len(events) == 1 and "heirs' written consent" in events[0][2]
    assert "rights overridden" in events[0][1]

    found = json.loads(run(root, "search", "Letters", "--json").stdout)["hits"]
    assert found and all(h["closed"] and h["snippet"] is None for h in found)
    assert found[0]["opens_on"] == "2076-01-01"
    # opened: a newer statement governs
    run(root, "rights", aip, "--status", "public-domain", "--note", "heirs released it")
    found = json.loads(run(root, "search", "Letters", "--json").stdout)["hits"]
    assert found[0]["closed"] is False and "[Letters]" in found[0]["snippet"]
    run(root, "export", aip, tmp_path / "out2")


def test_rights_come_back_with_a_catalog_rebuilt_from_storage(closed_aip, tmp_path):
    root, aip = closed_aip
    shutil.move(root / "catalog.sqlite", tmp_path / "before.sqlite")
    assert json.loads(run(root, "catalog", "rebuild", "--json").stdout)["status"] == "ok"
    assert json.loads(run(root, "catalog", "diff", tmp_path / "before.sqlite",
                          "--json").stdout)["same"]
    assert json.loads(run(root, "rights", "explain", aip, "--json").stdout)["open"] is False


def test_a_wrong_statement_is_refused_and_nothing_written(closed_aip):
    root, aip = closed_aip
    said = run(root, "rights", aip, "--status", "copyrighted", "--opens-after", "75",
               check_code=2)
    assert "--from-date or --from-field" in said.stderr
    assert "YYYY-MM-DD" in run(root, "rights", aip, "--status", "public-domain",
                               "--embargo-until", "soon", check_code=2).stderr
    assert Repository(root).catalog.get_aip(aip).version == 2


def test_a_daily_review_records_the_day_an_aip_opens(closed_aip):
    root, aip = closed_aip
    first = json.loads(run(root, "rights", "review", "--json").stdout)["changed"]
    assert first == [{"aip": aip, "before": None, "now": "closed", "opens_on": "2076-01-01"}]
    assert json.loads(run(root, "rights", "review", "--json").stdout)["changed"] == []
    opened = json.loads(run(root, "rights", "review", "--on", "2076-01-01",
                            "--json").stdout)["changed"]
    assert opened == [{"aip": aip, "before": "closed", "now": "open", "opens_on": None}]
    events = Repository(root).catalog.execute(
        "SELECT detail FROM events WHERE aip_id = ? AND type = 'policy assignment' "
        "ORDER BY seq", (aip,)).fetchall()
    assert [e[0] for e in events] == ["access decision: closed (opens on 2076-01-01)",
                                      "access decision: open"]


def test_a_term_counts_from_a_date_the_archivist_describes(closed_aip):
    """`describe --field` puts the date in bag-info; the policy's term (75 years from
    Creator-Death-Date) then decides, from a folder SIP, with no statement of its own."""
    root, aip = closed_aip
    policy = root / "policies" / "default.yaml"
    policy.write_text(policy.read_text(encoding="utf-8").replace(
        "# public_after: {years: 75, from: Creator-Death-Date, counting: year-end}",
        "public_after: {years: 75, from: Creator-Death-Date, counting: year-end}"),
        encoding="utf-8")
    run(root, "rights", aip, "--status", "copyrighted")
    said = json.loads(run(root, "rights", "explain", aip, "--json").stdout)
    assert not said["open"] and said["opens_on"] is None  # no date yet: closed
    assert "Creator-Death-Date" in " ".join(said["chain"])
    for wrong in ("Payload-Oxum=1.1", "Preserve-Collection=x", "Bad Label=x", "Death="):
        assert run(root, "describe", aip, "--field", wrong, check_code=2).returncode == 2
    run(root, "describe", aip, "--field", "Creator-Death-Date=1960-04-11",
        "--note", "from the authority file")
    said = json.loads(run(root, "rights", "explain", aip, "--json").stdout)
    assert not said["open"] and said["opens_on"] == "2036-01-01"
    said = json.loads(run(root, "rights", "explain", aip, "--on", "2036-01-01",
                          "--json").stdout)
    assert said["open"]
    run(root, "describe", aip, "--field", "Creator-Death-Date=1948-02-29")
    assert json.loads(run(root, "rights", "explain", aip, "--json").stdout)["open"]
