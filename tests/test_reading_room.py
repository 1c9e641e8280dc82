"""The reading room (issue 28): a real server on loopback, every route asked for an open
and a closed item, zero bytes of the closed one served; Range requests; traversal; no
write; pages in a real browser."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from PIL import Image

from tests.test_cli import run
from tests.test_search import PAGES, render_page

pytestmark = pytest.mark.skipif(shutil.which("tesseract") is None,
                                reason="scripts/setup.sh installs tesseract")


def _sip(tmp: Path, name: str, lang: str) -> Path:
    sip = tmp / name
    sip.mkdir()
    render_page(PAGES[lang], tmp / f"{name}.png")
    with Image.open(tmp / f"{name}.png") as page:
        page.save(sip / f"{name}-book.pdf", resolution=300)
    return sip


@pytest.fixture(scope="module")
def room(tmp_path_factory):
    """A repository with an open item and a closed one, each with text and an access
    copy, and its reading room running."""
    tmp = tmp_path_factory.mktemp("room")
    root = tmp / "repo"
    run(root, "init")
    ids = {}
    for name, lang, collection in (("open", "kaz", "Kazakh books"),
                                   ("closed", "eng", "Sealed letters")):
        said = run(root, "ingest", "-c", collection, "--title", f"The {name} item",
                   _sip(tmp, name, lang), "--json")
        ids[name] = json.loads(said.stdout)["id"]
    run(root, "rights", ids["open"], "--status", "public-domain")
    run(root, "rights", ids["closed"], "--status", "copyrighted", "--opens-after", "75",
        "--from-date", "2010-01-01")
    run(root, "extract", "--all")
    run(root, "search", "library")  # the index made before the room opens
    assert len(json.loads(run(root, "access", "build", "--all", "--json").stdout)["made"]) == 2
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    catalog = root / "catalog.sqlite"
    before = hashlib.sha256(catalog.read_bytes()).hexdigest()
    server = subprocess.Popen([sys.executable, "-m", "preserve", "serve", "--port", str(port)],
                              env=dict(os.environ, PRESERVE_REPO=str(root)),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:  # until it answers (a condition, not a fixed wait)
        try:
            urllib.request.urlopen(base + "/", timeout=5).read()
            break
        except (urllib.error.URLError, ConnectionError):
            assert server.poll() is None, server.stderr.read().decode()
            assert time.monotonic() < deadline, "the reading room did not start"
            time.sleep(0.1)
    yield {"base": base, "root": root, "ids": ids, "catalog_sha256": before}
    server.terminate()
    server.wait(timeout=30)


def _get(url: str, headers: dict | None = None) -> tuple[int, bytes, dict]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, answer.read(), dict(answer.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


def _leaks(body: bytes, room, name: str) -> list[str]:
    """What of item `name` a page shows: its id, title, collection, file name, words."""
    marks = [room["ids"][name], f"The {name} item", f"{name}-book.pdf",
             {"open": "Kazakh books", "closed": "Sealed letters"}[name],
             {"open": "Республикасының", "closed": "manuscripts"}[name]]
    text = body.decode("utf-8", "replace")
    return [m for m in marks if m in text]


def test_nothing_of_a_closed_item_is_served_on_any_route(room):
    base, ids = room["base"], room["ids"]
    for name, ok in (("open", True), ("closed", False)):
        aip = ids[name]
        collection = {"open": "Kazakh%20books", "closed": "Sealed%20letters"}[name]
        word = {"open": "Республикасының", "closed": "manuscripts"}[name]
        for route in (f"/aip/{aip}", f"/aip/{aip}/copy/{name}-book.pdf",
                      f"/collection/{collection}"):
            status, body, _ = _get(base + route)
            assert (status == 200) is ok, (route, status)
            if not ok:
                assert _leaks(body, room, name) == [], route
                assert not body.startswith(b"%PDF")
        for route in ("/", f"/search?q={urllib.parse.quote(word)}",
                      f"/search?q={urllib.parse.quote(word)}&collection={collection}"):
            status, body, _ = _get(base + route)
            assert status == 200
            body = body.replace(word.encode(), b"")  # the reader's own query, echoed
            assert bool(_leaks(body, room, name)) is ok, (route, _leaks(body, room, name))
    # a closed item and one that never existed answer alike
    missing = _get(f"{base}/aip/00000000-0000-4000-8000-000000000000")
    closed = _get(f"{base}/aip/{ids['closed']}")
    assert (missing[0], missing[1]) == (closed[0], closed[1])


def test_downloads_answer_range_requests_with_the_exact_bytes(room):
    aip = room["ids"]["open"]
    url = f"{room['base']}/aip/{aip}/copy/open-book.pdf"
    whole = (room["root"] / "access" / aip / "open-book.pdf").read_bytes()
    status, body, headers = _get(url)
    assert status == 200 and body == whole
    assert "default-src 'none'" in headers["content-security-policy"]
    first = _get(url, {"Range": "bytes=0-99"})
    rest = _get(url, {"Range": f"bytes=100-{len(whole) - 1}"})
    assert (first[0], rest[0]) == (206, 206)
    assert first[1] + rest[1] == whole  # a resumed download is the file
    assert first[2]["content-range"] == f"bytes 0-99/{len(whole)}"


@pytest.mark.parametrize("route", [
    "/aip/{open}/copy/../../../preserve.yaml", "/aip/{open}/copy/%2e%2e/%2e%2e/preserve.yaml",
    "/aip/{open}/copy/%2E%2E%2F%2E%2E%2Fpreserve.yaml", "/aip/{open}/copy//etc/passwd",
    "/aip/{open}/copy/..%5c..%5cpreserve.yaml", "/aip/../preserve.yaml",
    "/aip/{open}/copy/open-book.pdf%00.txt", "/aip/{open}/copy/", "/aip/f65b/",
    "/aip/{open}/copy/../{open}.json", "/collection/..%2F..%2Fpreserve.yaml",
    "/static/../../catalog.sqlite"])
def test_a_path_outside_what_the_manifest_names_is_never_opened(room, route):
    status, body, _ = _get(room["base"] + route.format(open=room["ids"]["open"]))
    assert status == 404, (route, status)
    assert b"format:" not in body and b"root:" not in body and b"SQLite" not in body


def test_the_reading_room_writes_nothing(room):
    base = room["base"]
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        request = urllib.request.Request(f"{base}/search?q=x", method=method, data=b"x")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=30)
        assert refused.value.code == 405
    for route in ("/", "/search?q=library", f"/aip/{room['ids']['open']}"):
        _get(base + route)
    catalog = room["root"] / "catalog.sqlite"
    assert hashlib.sha256(catalog.read_bytes()).hexdigest() == room["catalog_sha256"]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium")
def test_pages_in_a_browser_without_javascript(room, tmp_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"])
        try:
            page = browser.new_context(java_script_enabled=False).new_page()
            outside = []
            page.on("request", lambda r: outside.append(r.url)
                    if not r.url.startswith(room["base"]) else None)
            page.goto(room["base"] + "/")
            page.fill("input[name=q]", "Qazaqstan")
            page.click("button[type=submit]")
            page.wait_for_selector("ol.hits li")
            assert "Қазақстан" in page.inner_text("ol.hits")
            assert "manuscripts" not in page.content()
            page.screenshot(path=str(tmp_path / "search.png"), full_page=True)
            page.click("ol.hits li a")
            page.wait_for_selector("h1")
            assert page.inner_text("h1") == "The open item"
            page.screenshot(path=str(tmp_path / "item.png"), full_page=True)
            assert outside == []  # no request to any other host
            assert (tmp_path / "search.png").stat().st_size > 1000
        finally:
            browser.close()
