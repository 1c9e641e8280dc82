"""The reading room (issue 28): access copies and tiles built per minute on both cores,
and the server under 20 concurrent readers over 500 books / 50,000 pages.

    .venv/bin/python benchmarks/reading_room.py [--scans 40] [--pdf-pages 8]
                                                [--books 500] [--readers 20] [--rounds 30]
                                                [--skip-build] [--skip-load]

- build: A4 scans at 300 dpi (2480 x 3508, grey, 30 lines of DejaVu Serif), one AIP,
  `access build` on 2 workers: a JPEG and level-0 tiles per page (ImageMagick, libvips);
  then a PDF of scans, OCRmyPDF's PDF/A with a text layer and the pages' tiles; pages
  per minute of each, and the peak memory of preserve and of its largest child;
- load: a repository of `books` AIPs (ingested), a fifth of them closed by a rights
  statement; each book's access manifest names 100 pages (50,000 in all) whose tile
  folders are links to the real tiles of the build step's scans (the distinct tile files
  are those pages': what is measured is the server's work per request, the tile bytes
  coming from the page cache), the reading room started as `preserve serve` runs it (one
  process), and `readers` threads in a second process, each with its own connection,
  repeating: an item page, its IIIF manifest, a page's info.json, eight of its tiles,
  and once in four a closed book (its 404). p50/p95/max per kind of request,
  requests per second, the server's RSS before, half way and after.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from preserve.access import iiif  # noqa: E402
from preserve.access.copies import build, write_manifest  # noqa: E402
from preserve.access.rights import record_rights  # noqa: E402
from preserve.domain.rights import RightsStatement  # noqa: E402
from preserve.ingest.ingest import Metadata, ingest  # noqa: E402
from preserve.repository import Repository  # noqa: E402

WORK = HERE / "work" / "reading_room"
PAGES_PER_BOOK = 100
LINES = ["Қазақстан Республикасының Ұлттық кітапханасы қолжазбалар мен сирек кітаптар",
         "Azərbaycan Milli Kitabxanası əlyazmaları və nadir kitabları qoruyur",
         "Национальная библиотека хранит рукописи и редкие книги с XVIII века",
         "The national library keeps manuscripts and rare books from its foundation"]


def scan(dest: Path, number: int) -> None:
    """An A4 page at 300 dpi: 30 lines of text, in four languages."""
    args = ["convert", "-density", "300", "-size", "2480x3508", "xc:white", "-font",
            "DejaVu-Serif", "-pointsize", "11", "-fill", "black"]
    for line in range(30):
        args += ["-annotate", f"+200+{250 + line * 100}",
                 f"{number}.{line} {LINES[(number + line) % 4]}"]
    subprocess.run([*args, "-colorspace", "Gray", "-depth", "8", str(dest)], check=True)


def peak_child_mb() -> float:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def quiet_policy(root: Path) -> None:
    """Ingest without format validation and virus scans: what is timed is access."""
    policy = root / "policies" / "default.yaml"
    policy.write_text(policy.read_text(encoding="utf-8").replace(
        "validate: on", "validate: off").replace("virus: on", "virus: off"), encoding="utf-8")


def build_rates(scans: int, pdf_pages: int) -> dict:
    from PIL import Image

    repo, _ = Repository.init(WORK / "build")
    quiet_policy(repo.root)
    repo = Repository(repo.root)
    sip = WORK / "scans"
    sip.mkdir()
    for n in range(scans):
        scan(sip / f"page-{n:04d}.png", n)
    ingest(repo, sip, Metadata("Scans", "scans", [], [], None))
    started = time.perf_counter()
    result = build(repo, workers=2)
    took = time.perf_counter() - started
    assert not result.failed, result.failed
    out = {"scans": scans, "scan pages/min": round(scans / took * 60, 1),
           "scan s": round(took, 1)}
    pdf = WORK / "pdf"
    pdf.mkdir()
    pages = [Image.open(p) for p in sorted(sip.iterdir())[:pdf_pages]]
    pages[0].save(pdf / "book.pdf", resolution=300, save_all=True, append_images=pages[1:])
    ingest(repo, pdf, Metadata("Books", "book", [], [], None))
    repo.policy.text.languages = ["kaz", "rus"]  # a collection's, as a policy names them
    started = time.perf_counter()
    result = build(repo, workers=2)
    took = time.perf_counter() - started
    assert not result.failed, result.failed
    out.update({"pdf pages": pdf_pages, "pdf pages/min": round(pdf_pages / took * 60, 1),
                "pdf s": round(took, 1),
                "peak MB": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                "peak child MB": round(peak_child_mb())})
    return out


def load_repository(books: int, tiles_from: Path) -> tuple[Path, list[str], list[str]]:
    """`books` AIPs, a fifth closed; each with a manifest of 100 pages."""
    repo, _ = Repository.init(WORK / "load")
    quiet_policy(repo.root)
    repo = Repository(repo.root)
    # the scans' pages: all of one size, so that every page has the same tiles' names
    pages = sorted(p for p in tiles_from.rglob("page-*.png.pages/*")
                   if (p / "info.json").is_file())
    sip = WORK / "book"
    sip.mkdir()
    (sip / "book.pdf").write_bytes(b"%PDF-1.4\n% a stand-in: the manifest is what is read\n")
    open_ids, closed_ids = [], []
    started = time.perf_counter()
    for n in range(books):
        aip = ingest(repo, sip, Metadata("Books", f"Book {n}", ["Benchmark"], [], None)).aip_id
        if n % 5 == 4:
            record_rights(repo, aip, RightsStatement("copyrighted", opens_after_years=75,
                                                     from_date="2000-01-01"))
            closed_ids.append(aip)
        else:
            open_ids.append(aip)
        folder = repo.root / "access" / aip / "book.pdf.pages"
        folder.mkdir(parents=True)
        canvases = []
        for page in range(PAGES_PER_BOOK):
            real = pages[(n * PAGES_PER_BOOK + page) % len(pages)]
            (folder / f"{page + 1:04d}").symlink_to(real)
            info = json.loads((real / "info.json").read_text())
            canvases.append({"tiles": f"book.pdf.pages/{page + 1:04d}",
                             "width": info["width"], "height": info["height"]})
        (repo.root / "access" / aip / "book.pdf").write_bytes(b"%PDF-1.4\n")
        copies = {"data/book.pdf": {
            "kind": "documents", "choice": "pdfa", "source_sha512": "-", "made": "-",
            "files": {"book.pdf": "-"}, "pages": canvases, "thumbnail": None,
            "player": None, "tools": []}}
        write_manifest(repo.root / "access", aip, copies)
        iiif.write_manifest(repo.root / "access", aip, copies)
    print(f"  {books} books ingested and given manifests in "
          f"{time.perf_counter() - started:.0f} s", flush=True)
    repo.close()
    return repo.root, open_ids, closed_ids


def rss_mb(pid: int) -> float:
    """The server's resident memory: its process and its worker processes."""
    total = 0.0
    children = Path(f"/proc/{pid}/task/{pid}/children")
    for each in [pid, *map(int, children.read_text().split())]:
        for line in Path(f"/proc/{each}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) / 1024
    return total


def reader(port: int, open_ids: list[str], closed_ids: list[str], rounds: int, seed: int,
           tiles: dict, timings: dict, lock: threading.Lock) -> None:
    rng = random.Random(seed)
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    mine: dict[str, list[float]] = {}

    def get(kind: str, path: str, expect: int = 200) -> bytes:
        started = time.perf_counter()
        connection.request("GET", path)
        answer = connection.getresponse()
        body = answer.read()
        mine.setdefault(kind, []).append((time.perf_counter() - started) * 1000)
        assert answer.status == expect, (path, answer.status)
        return body

    for _ in range(rounds):
        aip = rng.choice(open_ids)
        get("item page", f"/aip/{aip}")
        get("manifest", f"/aip/{aip}/manifest.json")
        page = rng.randrange(PAGES_PER_BOOK)
        get("info.json", f"/aip/{aip}/iiif/{page}/info.json")
        for tile in rng.sample(tiles[page % len(tiles)], min(8, len(tiles[page % len(tiles)]))):
            get("tile", f"/aip/{aip}/iiif/{page}/{tile}")
        if rng.random() < 0.25:
            get("closed (404)", f"/aip/{rng.choice(closed_ids)}/iiif/0/info.json", 404)
    with lock:
        for kind, took in mine.items():
            timings.setdefault(kind, []).extend(took)


def load(root: Path, open_ids: list[str], closed_ids: list[str], readers: int,
         rounds: int, workers: int) -> dict:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([str(ROOT / ".venv" / "bin" / "preserve"), "--repo", str(root),
                               "serve", "--port", str(port), "--workers", str(workers)],
                              stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                assert time.monotonic() < deadline and server.poll() is None
                time.sleep(0.1)
        # every page's tiles, as a reader's viewer would ask for them
        sample = root / "access" / open_ids[0] / "book.pdf.pages"
        tiles = {}
        for page in range(min(PAGES_PER_BOOK, 20)):
            folder = (sample / f"{page + 1:04d}").resolve()
            tiles[page] = [p.relative_to(folder).as_posix() for p in folder.rglob("default.jpg")]
        # warm up: every book's page and manifest once (the server's caches, which are
        # bounded, filled), the page cache
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        for aip in open_ids:
            for path in (f"/aip/{aip}", f"/aip/{aip}/manifest.json"):
                connection.request("GET", path)
                connection.getresponse().read()
        warm: dict = {}
        reader(port, open_ids, closed_ids, 5, 0, tiles, warm, threading.Lock())
        before = rss_mb(server.pid)
        timings: dict[str, list[float]] = {}
        lock = threading.Lock()
        threads = [threading.Thread(target=reader, args=(port, open_ids, closed_ids, rounds,
                                                         n + 1, tiles, timings, lock))
                   for n in range(readers)]
        started = time.perf_counter()
        for t in threads:
            t.start()
        middle = None
        while any(t.is_alive() for t in threads):
            time.sleep(0.5)
            if middle is None and time.perf_counter() - started > 5:
                middle = rss_mb(server.pid)
        took = time.perf_counter() - started
        after = rss_mb(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)
    out = {"requests": sum(len(v) for v in timings.values()),
           "requests/s": round(sum(len(v) for v in timings.values()) / took),
           "rss MB before/middle/after": [round(before), round(middle or after),
                                          round(after)]}
    for kind, took_ms in sorted(timings.items()):
        took_ms.sort()
        out[kind] = {"n": len(took_ms), "p50 ms": round(statistics.median(took_ms), 1),
                     "p95 ms": round(took_ms[int(len(took_ms) * 0.95) - 1], 1),
                     "max ms": round(took_ms[-1], 1)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scans", type=int, default=40)
    parser.add_argument("--pdf-pages", type=int, default=8)
    parser.add_argument("--books", type=int, default=500)
    parser.add_argument("--readers", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--skip-build", action="store_true",
                        help="reuse the tiles of an earlier run's build step")
    parser.add_argument("--skip-load", action="store_true")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2],
                        help="server processes, one load run each")
    args = parser.parse_args()
    if not args.skip_build:
        shutil.rmtree(WORK, ignore_errors=True)
        WORK.mkdir(parents=True)
        print("build:", json.dumps(build_rates(args.scans, args.pdf_pages), indent=1),
              flush=True)
    if not args.skip_load:
        shutil.rmtree(WORK / "load", ignore_errors=True)
        shutil.rmtree(WORK / "book", ignore_errors=True)
        root, open_ids, closed_ids = load_repository(args.books, WORK / "build" / "access")
        for workers in args.workers:
            print(f"load, {workers} server process(es):", json.dumps(
                load(root, open_ids, closed_ids, args.readers, args.rounds, workers),
                indent=1, ensure_ascii=False), flush=True)


if __name__ == "__main__":
    os.environ.setdefault("PRESERVE_NO_PROGRESS", "1")
    main()
