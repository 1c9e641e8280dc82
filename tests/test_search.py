"""Full-text search (issue 27): the language layer, the relevance set on both engines, OCR
that gives the same text every run, text kept in the AIP and the index rebuilt from it."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from preserve.access.search import search
from preserve.catalog.search import fts5_query, tsquery
from preserve.data.extract import extract_stored
from preserve.data.search_index import refresh
from preserve.domain import ocfl
from preserve.domain.kept_text import text_path
from preserve.domain.words import index_keys, key, keys, matches, query_terms
from preserve.ingest.ingest import Metadata, ingest
from preserve.pipeline.ocr import ocr_page
from preserve.repository import Repository
from tests import search_corpus
from tests.test_cli import run

RECALL_AT = 10


# -- the language layer -------------------------------------------------------------------

@pytest.mark.parametrize("asked, printed", [
    ("ƏLYAZMALARI", "əlyazmaları"), ("elyazmalari", "əlyazmaları"),
    ("KİTABXANA", "kitabxana"), ("казакстан", "Қазақстан"), ("Qazaqstan", "Қазақстан"),
    ("кітапхана", "кітапханасы"), ("библиотека", "библиотеки"), ("library", "libraries"),
    ("ISTANBUL", "İstanbul"), ("Ұлттық", "ұлттық")])
def test_a_word_is_found_as_readers_type_it(asked, printed):
    assert all(matches(term, keys(printed)) for term in query_terms(asked))


def test_unrelated_words_do_not_meet():
    for asked, printed in [("кітап", "мектеп"), ("library", "liberty"), ("архив", "арка")]:
        assert not all(matches(t, keys(printed)) for t in query_terms(asked))


@given(st.text(max_size=200))
def test_keys_are_letters_and_digits_only_and_engines_can_take_them(text):
    for k in index_keys(text).split():
        assert k and all(c.isalnum() for c in k) and k == key(k)
    terms = query_terms(text)
    if terms:  # quoting is all they need: no key can break either query language
        assert fts5_query(terms).count('"') == 2 * sum(len(t) for t in terms)
        assert "'" not in "".join(k for t in terms for k in t)
        assert tsquery(terms).count("'") == 2 * sum(len(t) for t in terms)


def test_every_page_word_is_matched_by_itself(tmp_path):
    text = " ".join(w for words in search_corpus.WORDS.values() for w, _ in words)
    for term in query_terms(text):
        assert matches(term, term)


# -- the relevance set, on both engines ---------------------------------------------------

def _corpus_repo(root: Path, tmp_path: Path, catalog: str | None = None) -> tuple[Repository, str]:
    sip = tmp_path / "corpus"
    sip.mkdir(exist_ok=True)
    for name, body in search_corpus.documents().items():
        (sip / name).write_text(body, encoding="utf-8")
    repo, _ = Repository.init(root, catalog)
    done = ingest(repo, sip, Metadata("Library", "Multilingual corpus", [], [], None))
    extracted = extract_stored(repo)
    assert not extracted.failed and len(extracted.extracted) == len(search_corpus.documents())
    refresh(repo)
    return repo, done.aip_id


def _recall(repo: Repository, aip: str) -> tuple[float, dict[str, list[str]], dict]:
    missed: dict[str, list[str]] = {}
    found_sets = {}
    queries = search_corpus.queries()
    for kind, query, doc in queries:
        hits = search(repo.catalog, query, limit=RECALL_AT)
        found_sets[query] = sorted(h.path for h in search(repo.catalog, query, limit=500))
        if ("data/" + doc) not in [h.path for h in hits if h.aip == aip]:
            missed.setdefault(kind, []).append(query)
    return 1 - sum(map(len, missed.values())) / len(queries), missed, found_sets


def _baseline(tmp_path: Path) -> float:
    """The same queries against FTS5's own tokenizer over the same texts: what the
    language layer is measured against."""
    db = sqlite3.connect(tmp_path / "baseline.sqlite")
    db.execute("CREATE VIRTUAL TABLE t USING fts5(name, body, tokenize='unicode61 "
               "remove_diacritics 2')")
    db.executemany("INSERT INTO t VALUES (?, ?)", search_corpus.documents().items())
    found = 0
    for _, query, doc in search_corpus.queries():
        q = '"' + query.replace('"', "") + '"'
        names = [r[0] for r in db.execute("SELECT name FROM t WHERE t MATCH ? ORDER BY rank "
                                          f"LIMIT {RECALL_AT}", (f"body: {q}",))]
        found += doc in names
    return found / len(search_corpus.queries())


def test_the_relevance_set_is_found_on_both_engines(tmp_path, fresh_database, capsys):
    assert len(search_corpus.queries()) >= 200
    kinds = {k for k, _, _ in search_corpus.queries()}
    assert {"kk Russian keyboard", "kk Latin script", "az without its letters",
            "az capitals", "ru inflection", "kk inflection", "en inflection"} <= kinds
    on_sqlite, aip = _corpus_repo(tmp_path / "sqlite", tmp_path)
    recall_sqlite, missed_sqlite, hits_sqlite = _recall(on_sqlite, aip)
    on_pg, aip_pg = _corpus_repo(tmp_path / "pg", tmp_path, fresh_database)
    recall_pg, missed_pg, hits_pg = _recall(on_pg, aip_pg)
    baseline = _baseline(tmp_path)
    with capsys.disabled():
        print(f"\nrecall@{RECALL_AT} over {len(search_corpus.queries())} queries: SQLite FTS5 "
              f"{recall_sqlite:.3f}, PostgreSQL {recall_pg:.3f}; FTS5's own tokenizer "
              f"{baseline:.3f}")
    assert recall_sqlite >= 0.95, missed_sqlite
    assert recall_pg >= 0.95, missed_pg
    assert hits_sqlite == hits_pg  # the same query, the same hits
    assert baseline < recall_sqlite


def test_search_filters_and_says_where(tmp_path):
    repo, aip = _corpus_repo(tmp_path / "repo", tmp_path)
    hits = search(repo.catalog, "Multilingual corpus")
    assert hits[0].kind == "aip" and hits[0].aip == aip and hits[0].path == ""
    named = search(repo.catalog, "kk-01")
    assert named[0].path == "data/kk-01.txt" and named[0].kind == "file"
    hits = search(repo.catalog, "библиотека")
    assert hits[0].path == "data/ru-01.txt" and hits[0].page == 1
    assert "[библиотеки]" in hits[0].snippet
    assert search(repo.catalog, "библиотека", collection="Elsewhere") == []
    assert search(repo.catalog, "библиотека", puid="fmt/999") == []
    assert search(repo.catalog, "библиотека", aip_id=aip)[0].aip == aip


def test_search_on_the_command_line(tmp_path):
    root = tmp_path / "repo"
    sip = tmp_path / "sip"
    sip.mkdir()
    (sip / "note.txt").write_text("Azərbaycan Milli Kitabxanasının əlyazmaları\f"
                                  "Second page: Қазақстан Республикасы\f", encoding="utf-8")
    run(root, "init")
    run(root, "ingest", "-c", "Notes", sip)
    said = json.loads(run(root, "extract", "--all", "--json").stdout)
    assert said["pages"] == 2 and said["exit_code"] == 0
    found = json.loads(run(root, "search", "Qazaqstan", "--json").stdout)
    assert [(h["path"], h["page"]) for h in found["hits"]] == [("data/note.txt", 2)]
    assert run(root, "search", "ELYAZMALARI").stdout.count("note.txt") == 1
    nothing = run(root, "search", "zzzzqqqq", "--json", check_code=1)
    assert json.loads(nothing.stdout)["hits"] == []
    assert "no words" in run(root, "search", "--", "...", check_code=2).stderr
    # a second extract finds nothing left to do
    assert json.loads(run(root, "extract", "--all", "--json").stdout)["planned"] == 0
    # kept text damaged in storage: named, never indexed from; what was indexed still found
    repo = Repository(root)
    aip = repo.catalog.list_aips()[0].id
    kept = (repo.primary_location().local_path(ocfl.object_root(aip)) / "v2" / "content"
            / text_path("data/note.txt"))
    original = kept.read_bytes()
    kept.write_bytes((b"forged text " * len(original))[:len(original)])  # only the digest tells
    repo.catalog.execute("UPDATE search_pages SET version = 1 WHERE kind = 'aip'")  # stale
    said = run(root, "search", "Qazaqstan", "--json")
    assert "note.txt.txt" in said.stderr and "recorded digest" in said.stderr
    assert "not indexed again" in said.stderr
    assert json.loads(said.stdout)["hits"][0]["path"] == "data/note.txt"
    assert json.loads(run(root, "search", "forged", "--json", check_code=1).stdout)["hits"] == []
    kept.write_bytes(original)  # repaired: indexed again at the next search
    assert run(root, "search", "Qazaqstan").stderr == ""


# -- OCR: the same text every run, its accuracy per language ------------------------------

PAGES = {
    "kaz": "Қазақстан Республикасының Ұлттық кітапханасы\nқолжазбалар мен сирек кітаптар "
           "қорын сақтайды",
    "aze": "Azərbaycan Milli Kitabxanası əlyazmaları\nvə nadir kitabları qoruyur",
    "rus": "Российская национальная библиотека хранит\nрукописи и редкие книги",
    "eng": "The national library keeps manuscripts\nand rare books for every reader",
}


def render_page(text: str, dest: Path) -> Path:
    """A clean 300 dpi page in DejaVu Serif, rendered by ImageMagick."""
    subprocess.run(["convert", "-density", "300", "-size", "2480x700", "xc:white", "-font",
                    "DejaVu-Serif", "-pointsize", "14", "-fill", "black", "-annotate",
                    "+120+200", text, "-colorspace", "Gray", "-depth", "8", str(dest)],
                   check=True, capture_output=True)
    return dest


def character_error_rate(truth: str, read: str) -> float:
    a, b = " ".join(truth.split()), " ".join(read.split())
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
    return row[-1] / max(1, len(a))


@pytest.mark.skipif(shutil.which("tesseract") is None, reason="scripts/setup.sh installs it")
def test_ocr_is_deterministic_accurate_and_detects_the_language(tmp_path, capsys):
    rates = {}
    for lang, text in PAGES.items():
        image = render_page(text, tmp_path / f"{lang}.png")
        first = ocr_page(image, tmp_path)
        second = ocr_page(image, tmp_path)
        assert first.text.encode() == second.text.encode()
        assert first.alto == second.alto and first.hocr == second.hocr
        assert first.languages == [lang], first.basis
        rates[lang] = character_error_rate(text, first.text)
        ET.fromstring(first.alto)  # ALTO is XML, with word positions
        assert b"HPOS" in first.alto and b"bbox" in first.hocr
        poor = tmp_path / f"{lang}-poor.png"  # a poor scan: blurred, speckled, turned
        subprocess.run(["convert", str(image), "-rotate", "0.7", "-blur", "0x1.2",
                        "-attenuate", "0.6", "+noise", "Impulse", str(poor)], check=True)
        read = ocr_page(poor, tmp_path)
        assert read.languages == [lang], read.basis
        rates[f"{lang} degraded"] = character_error_rate(text, read.text)
    with capsys.disabled():
        print("\nOCR character error rate, 300 dpi DejaVu Serif pages: "
              + ", ".join(f"{lang} {r:.3f}" for lang, r in rates.items()))
    assert all(r <= 0.02 for r in rates.values()), rates


# -- text kept in the AIP; the index rebuilt from it, no OCR again ------------------------

@pytest.mark.skipif(shutil.which("tesseract") is None, reason="scripts/setup.sh installs it")
def test_scans_are_read_kept_in_the_aip_and_found_again_after_a_rebuild(tmp_path):
    sip = tmp_path / "scans"
    sip.mkdir()
    render_page(PAGES["kaz"], sip / "page-kk.png")
    render_page(PAGES["eng"], tmp_path / "en.png")
    from PIL import Image

    with Image.open(tmp_path / "en.png") as scan:  # a PDF of a scan: no text layer, OCR
        scan.save(sip / "scanned.pdf", resolution=300)
    root = tmp_path / "repo"
    run(root, "init")
    run(root, "ingest", "-c", "Scans", sip)
    said = json.loads(run(root, "extract", "--all", "--json").stdout)
    assert said["ocr_pages"] == 2 and not said["failed"], said
    by_file = {e["path"]: e for e in said["extracted"]}
    assert by_file["data/page-kk.png"]["languages"] == ["kaz"]
    assert by_file["data/scanned.pdf"]["method"] == "OCR"
    repo = Repository(root)
    aip = repo.catalog.list_aips()[0].id
    assert repo.catalog.get_aip(aip).version == 2
    for path in (text_path("data/page-kk.png"), text_path("data/page-kk.png", 1, ".alto.xml"),
                 text_path("data/scanned.pdf", 1, ".hocr")):
        assert repo.catalog.holds(aip, 2, path), path
    premis = (repo.primary_location().local_path(ocfl.object_root(aip))
              / "v2" / "content" / "metadata" / "premis-v2.xml").read_text(encoding="utf-8")
    assert "tesseract" in premis and "kaz.traineddata sha256" in premis
    assert "page 1: kaz (detected: Cyrillic" in premis
    found = json.loads(run(root, "search", "Qazaqstan", "--json").stdout)["hits"]
    assert found[0]["path"] == "data/page-kk.png" and found[0]["kind"] == "ocr"
    before = _index_rows(repo)
    repo.close()

    shutil.move(root / "catalog.sqlite", tmp_path / "catalog-before.sqlite")
    rebuilt = json.loads(run(root, "catalog", "rebuild", "--json").stdout)
    assert rebuilt["status"] == "ok" and rebuilt["indexed"] == len(before)
    again = Repository(root)
    assert again.catalog.get_aip(aip).version == 2  # nothing extracted again
    assert _index_rows(again) == before
    assert json.loads(run(root, "catalog", "diff", tmp_path / "catalog-before.sqlite",
                          "--index", "--json").stdout)["same"]
    found = json.loads(run(root, "search", "manuscripts", "--json").stdout)["hits"]
    assert (found[0]["path"], found[0]["page"]) == ("data/scanned.pdf", 1)


def _index_rows(repo: Repository) -> list[tuple]:
    return [tuple(r) for r in repo.catalog.execute(
        "SELECT aip_id, version, path, page, kind, puid, text, keys FROM search_pages "
        "ORDER BY aip_id, path, page")]
