"""Full-text search (issue 27): indexing 50,000 pages, query latency on both engines, OCR
throughput, and born-digital PDF extraction.

    .venv/bin/python benchmarks/search.py [--pages 50000] [--queries 300] [--ocr-pages 24]
                                          [--skip-pg] [--skip-ocr] [--skip-pdf]

- index: AIPs of text files (100 pages each, pages split by form feeds, about 300 words
  a page in Kazakh, Azerbaijani, Russian and English, a vocabulary of some 60,000 words),
  ingested and their text extracted (`extract`: decoded, kept in the AIP), then the
  index built from what the AIPs keep (`refresh`, the step the target is about), timed
  on SQLite and on PostgreSQL (a real server from Debian's packages, tests/pgserver.py);
- queries: words of every kind the relevance set has (as printed, capitals, without
  Azerbaijani letters, Kazakh on a Russian keyboard and in Latin letters, other
  inflections), rare and common, one and two words; p50/p95/max per engine (the whole
  of `search`: the language layer, the engine, snippets);
- OCR: full A4 pages rendered at 300 dpi (30 lines of DejaVu Serif, four languages),
  `extract` on both cores,
  pages per minute, and the peak memory of preserve and of its largest child;
- PDF: a born-digital PDF of 400 pages (LibreOffice from text), `extract`, pages per second.
"""

from __future__ import annotations

import argparse
import random
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from preserve.access.search import search  # noqa: E402
from preserve.data.extract import extract_stored  # noqa: E402
from preserve.data.search_index import refresh  # noqa: E402
from preserve.ingest.ingest import Metadata, ingest  # noqa: E402
from preserve.repository import Repository  # noqa: E402
from tests import search_corpus  # noqa: E402

WORK = HERE / "work" / "search"
PAGES_PER_FILE = 100
FILES_PER_AIP = 10
WORDS_PER_PAGE = 300
SYLLABLES = {  # split at the spaces
    "kk": "қа за ті ба ңы ғы ұл өр мен тар лар дың кі та хан сы ол ер жа ма",
    "az": "kı tab xa na sı əl yaz ma lar ın də çi şə hər qə zet mək təb",
    "ru": "би бли о те ка ру ко пи си ар хив ле то пис ей жур на лов",
    "en": "li bra ry man u script ar chive his tor ian col lec tion news pa per",
}


def vocabulary(rng: random.Random) -> dict[str, list[str]]:
    """Per language: about 15,000 words made of its syllables, in the order of their
    frequency (the first on most pages), the relevance set's words among them at ranks
    100-1,500 (words of a subject: on a few hundred to a few thousand pages)."""
    out = {}
    for lang, syllables in SYLLABLES.items():
        made = sorted({"".join(rng.choices(syllables.split(), k=rng.randint(2, 5)))
                       for _ in range(15_000)})
        rng.shuffle(made)
        for word, _ in search_corpus.WORDS[lang]:
            made.insert(rng.randint(100, 1500), word)
        out[lang] = made
    return out


def make_sips(pages: int, rng: random.Random, words: dict[str, list[str]]) -> list[Path]:
    langs = list(words)
    sips, n = [], 0
    per_aip = PAGES_PER_FILE * FILES_PER_AIP
    for a in range((pages + per_aip - 1) // per_aip):
        sip = WORK / "sips" / f"aip-{a:03d}"
        sip.mkdir(parents=True)
        for f in range(FILES_PER_AIP):
            lang = langs[(a + f) % len(langs)]
            vocab = words[lang]
            body = []
            for _ in range(PAGES_PER_FILE):
                if n >= pages:
                    break
                # Zipf-like: a few words on every page, most rare
                page = [vocab[min(int(rng.paretovariate(1.0)) - 1, len(vocab) - 1)
                              if rng.random() < 0.5 else rng.randrange(len(vocab))]
                        for _ in range(WORDS_PER_PAGE)]
                body.append(" ".join(page))
                n += 1
            if body:
                (sip / f"book-{f:02d}-{lang}.txt").write_text("\f".join(body) + "\f",
                                                               encoding="utf-8")
        sips.append(sip)
    return sips


def build(where: Path, catalog: str | None, sips: list[Path]) -> tuple[Repository, dict]:
    repo, _ = Repository.init(where, catalog)
    started = time.perf_counter()
    for sip in sips:
        ingest(repo, sip, Metadata("Benchmark", sip.name, [], [], None))
    ingested = time.perf_counter()
    extract_stored(repo)
    extracted = time.perf_counter()
    done = refresh(repo)
    indexed = time.perf_counter()
    return repo, {"ingest s": ingested - started, "extract s": extracted - ingested,
                  "index s": indexed - extracted, "rows": done.rows}


def query_set(n: int, rng: random.Random, vocab: dict[str, list[str]]) -> tuple[list, list]:
    """(realistic, worst): the relevance set's queries, alone or with a common word; and
    the words on most pages, alone."""
    asked = [q for _, q, _ in search_corpus.queries()]
    common = [w for lang in vocab for w in vocab[lang][:10]]  # on most pages
    realistic = [rng.choice(asked) if rng.random() < 0.7 else
                 f"{rng.choice(asked)} {rng.choice(common)}" for _ in range(n)]
    return realistic, [rng.choice(common) for _ in range(n // 3)]


def time_queries(repo: Repository, queries: list[str]) -> dict:
    for q in queries[:20]:  # warm: the page cache and the language layer's caches
        search(repo.catalog, q)
    took = []
    for q in queries:
        started = time.perf_counter()
        search(repo.catalog, q)
        took.append((time.perf_counter() - started) * 1000)
    took.sort()
    return {"p50 ms": statistics.median(took), "p95 ms": took[int(len(took) * 0.95) - 1],
            "max ms": took[-1]}


def ocr_throughput(n: int) -> dict:
    from tests.test_search import PAGES

    sip = WORK / "scans"
    sip.mkdir(parents=True)
    texts = list(PAGES.values())
    for i in range(n):  # a full A4 page at 300 dpi: 30 lines of DejaVu Serif 11 pt
        body = "\n".join(texts[i % len(texts)].replace("\n", " ")[:70] for _ in range(30))
        subprocess.run(["convert", "-density", "300", "-size", "2480x3508", "xc:white",
                        "-font", "DejaVu-Serif", "-pointsize", "11", "-fill", "black",
                        "-interline-spacing", "20", "-annotate", "+150+250",
                        f"{body}\npage {i + 1}", "-colorspace", "Gray", "-depth", "8",
                        str(sip / f"page-{i:03d}.png")], check=True, capture_output=True)
    repo, _ = Repository.init(WORK / "ocr-repo")
    ingest(repo, sip, Metadata("Scans", "scans", [], [], None))
    started = time.perf_counter()
    result = extract_stored(repo)
    seconds = time.perf_counter() - started
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"pages": result.ocr_pages, "seconds": seconds,
            "pages/min": result.ocr_pages / seconds * 60,
            "peak MB (preserve, largest child)": f"{own:.0f}, {child:.0f}"}


def ocr_accuracy() -> dict:
    """Character error rate per language on the test's pages (DejaVu Serif, 300 dpi):
    clean, and degraded as a poor scan is (blurred, speckled, slightly rotated)."""
    from preserve.pipeline.ocr import ocr_page
    from tests.test_search import PAGES, character_error_rate, render_page

    folder = WORK / "cer"
    folder.mkdir(parents=True)
    out = {}
    for lang, text in PAGES.items():
        clean = render_page(text, folder / f"{lang}.png")
        poor = folder / f"{lang}-poor.png"
        subprocess.run(["convert", str(clean), "-rotate", "0.7", "-blur", "0x1.2",
                        "-attenuate", "0.6", "+noise", "Impulse", "-colorspace", "Gray",
                        str(poor)], check=True)
        rates = []
        for image in (clean, poor):
            page = ocr_page(image, folder)
            rates.append(f"{character_error_rate(text, page.text):.3f} ({'+'.join(page.languages)})")
        out[lang] = {"clean": rates[0], "degraded": rates[1]}
    return out


def pdf_extraction(pages: int) -> dict:
    src = WORK / "pdf-src"
    src.mkdir(parents=True)
    rng = random.Random(7)
    words = [w for lang in search_corpus.WORDS.values() for w, _ in lang] * 10
    text = src / "book.txt"
    text.write_text("\f".join(" ".join(rng.choices(words, k=250)) for _ in range(pages)),
                    encoding="utf-8")
    subprocess.run(["soffice", "--headless", "--norestore",
                    f"-env:UserInstallation={(WORK / 'lo').as_uri()}", "--convert-to", "pdf",
                    "--outdir", str(src), str(text)], check=True, capture_output=True)
    text.unlink()
    repo, _ = Repository.init(WORK / "pdf-repo")
    ingest(repo, src, Metadata("PDF", "born digital", [], [], None))
    started = time.perf_counter()
    result = extract_stored(repo)
    seconds = time.perf_counter() - started
    return {"pages": result.pages, "seconds": seconds, "pages/s": result.pages / seconds}


def _said(figures: dict) -> str:
    return ", ".join(f"{k} {v:.1f}" if isinstance(v, float) else f"{k} {v}"
                     for k, v in figures.items())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pages", type=int, default=50_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--ocr-pages", type=int, default=24)
    parser.add_argument("--pdf-pages", type=int, default=400)
    parser.add_argument("--skip-pg", action="store_true")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--skip-index", action="store_true")
    parser.add_argument("--skip-ocr", action="store_true")
    parser.add_argument("--skip-pdf", action="store_true")
    args = parser.parse_args()
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    vocab = vocabulary(random.Random(1))
    sips = make_sips(args.pages, random.Random(2026), vocab) if not args.skip_index else []
    realistic, worst = query_set(args.queries, random.Random(5), vocab)
    targets = [] if args.skip_sqlite or args.skip_index else [("SQLite", None)]
    server = None
    if not (args.skip_pg or args.skip_index):
        from tests.pgserver import PostgresServer

        server = PostgresServer(WORK / "pg")
        targets.append(("PostgreSQL", server.new_database("search")))
    try:
        for name, catalog in targets:
            repo, built = build(WORK / f"repo-{name}", catalog, sips)
            print(f"{name}: {args.pages:,} pages: " + _said(built), flush=True)
            print(f"  queries, realistic ({len(realistic)}): "
                  + _said(time_queries(repo, realistic)), flush=True)
            print(f"  queries, words on most pages ({len(worst)}): "
                  + _said(time_queries(repo, worst)), flush=True)
            repo.close()
    finally:
        if server:
            server.stop()
    if not args.skip_pdf:
        print("born-digital PDF:", pdf_extraction(args.pdf_pages), flush=True)
    if not args.skip_ocr:
        print("OCR:", ocr_throughput(args.ocr_pages), flush=True)
        print("OCR character error rate:", ocr_accuracy(), flush=True)


if __name__ == "__main__":
    main()
