"""The reading room (issue 28): a real server on loopback, every route asked for an open
and a closed item, zero bytes of the closed one served; Range requests; traversal; no
write; pages in a real browser."""

from __future__ import annotations

import base64
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


# The rights states of the matrix: (rights options, open to readers?, to staff?)
STATES = {
    "open": (["--status", "public-domain"], True, True),
    "ended": (["--status", "licensed", "--license", "https://creativecommons.org/licenses/by/4.0/",
               "--embargo-until", "2020-01-01"], True, True),
    "closed": (["--status", "copyrighted", "--opens-after", "75", "--from-date", "2010-01-01"],
               False, False),
    "embargoed": (["--status", "public-domain", "--embargo-until", "2099-01-01"], False, False),
    "unknown": (["--status", "unknown"], False, False),
    "staff": (["--status", "public-domain", "--audience", "staff"], False, True),
}
CLOSED = [name for name, (_, public, _) in STATES.items() if not public]
WORDS = {name: f"Zanzibar{name.capitalize()}ledger" for name in STATES}  # each item's own
STAFF = ("archivist", "a long staff password")


def _sip(tmp: Path, name: str) -> Path:
    sip = tmp / name
    sip.mkdir()
    if name == "open":  # a PDF of a scan: a PDF/A copy with its page tiles
        render_page(PAGES["kaz"], tmp / f"{name}.png")
        with Image.open(tmp / f"{name}.png") as page:
            page.save(sip / f"{name}-book.pdf", resolution=300)
    else:  # a scan: a JPEG copy with its tiles
        render_page(f"Harbour ledger {WORDS[name]} of 1923", sip / f"{name}-book.png")
    return sip


def _collection(name: str) -> str:
    return f"Shelf {name}"


def _start(root: Path, *args: str, env: dict | None = None):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "preserve", "serve", "--port", str(port),
                               *args], env={**os.environ, "PRESERVE_REPO": str(root),
                                            **(env or {})},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:  # until it answers (a condition, not a fixed wait)
        try:
            urllib.request.urlopen(base + "/", timeout=5).read()
            return server, base
        except (urllib.error.URLError, ConnectionError):
            assert server.poll() is None, server.stderr.read().decode()
            assert time.monotonic() < deadline, "the reading room did not start"
            time.sleep(0.1)


@pytest.fixture(scope="module")
def room(tmp_path_factory):
    """A repository with an item in each rights state, each with text and access copies,
    a staff member, and its reading room running."""
    tmp = tmp_path_factory.mktemp("room")
    root = tmp / "repo"
    run(root, "init")
    ids = {}
    for name, (options, _, _) in STATES.items():
        said = run(root, "ingest", "-c", _collection(name), "--title", f"The {name} item",
                   _sip(tmp, name), "--json")
        ids[name] = json.loads(said.stdout)["id"]
        run(root, "rights", ids[name], *options)
    run(root, "access", "staff", "add", STAFF[0], "--password-stdin", input=STAFF[1])
    run(root, "extract", "--all")
    run(root, "search", "ledger")  # the index made before the room opens
    assert len(json.loads(run(root, "access", "build", "--all", "--json").stdout)["made"]) \
        == len(STATES)
    catalog = root / "catalog.sqlite"
    before = hashlib.sha256(catalog.read_bytes()).hexdigest()
    server, base = _start(root)
    yield {"base": base, "root": root, "ids": ids, "catalog_sha256": before,
           "tree": _tree(root)}
    server.terminate()
    server.wait(timeout=30)


@pytest.mark.skipif(shutil.which("faketime") is None, reason="scripts/setup.sh installs it")
def test_an_item_opens_on_its_day_without_a_restart(tmp_path):
    """The room runs on a clock set to seconds before an embargo ends (libfaketime): the
    item is not there, then, once the day comes, it is, with nobody doing anything."""
    sip = tmp_path / "sip"
    sip.mkdir()
    Image.new("RGB", (600, 400), "white").save(sip / "map.png")
    root = tmp_path / "repo"
    run(root, "init")
    aip = json.loads(run(root, "ingest", "-c", "Maps", "--title", "The sealed map", sip,
                         "--json").stdout)["id"]
    run(root, "rights", aip, "--status", "public-domain", "--embargo-until", "2100-01-01")
    run(root, "access", "build", "--all")
    # libfaketime preloaded into the server itself (the faketime command would fork, and
    # its child outlive the test)
    server, base = _start(root, "--workers", "1", env={
        "LD_PRELOAD": "/usr/$LIB/faketime/libfaketime.so.1",
        "FAKETIME": "@2099-12-31 23:59:52", "FAKETIME_NO_CACHE": "1"})
    try:
        status, body, _ = _get(f"{base}/aip/{aip}/thumbnail.jpg")
        assert status == 404 and b"sealed" not in body  # 31 December 2099
        assert "Maps" not in _get(base + "/")[1].decode()
        deadline = time.monotonic() + 120
        while _get(f"{base}/aip/{aip}")[0] != 200:  # until its day comes
            assert time.monotonic() < deadline, "the item did not open on its day"
            time.sleep(0.2)
        assert _get(f"{base}/aip/{aip}/thumbnail.jpg")[0] == 200
        assert "Maps" in _get(base + "/")[1].decode()
    finally:
        server.terminate()
        server.wait(timeout=30)


def _tree(root: Path) -> dict[str, tuple[int, str]]:
    """Every file of the repository (its access copies included): size and sha256."""
    return {str(p.relative_to(root)): (p.stat().st_size, hashlib.sha256(p.read_bytes())
                                       .hexdigest())
            for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink()}


def _get(url: str, headers: dict | None = None, staff: bool = False
         ) -> tuple[int, bytes, dict]:
    headers = dict(headers or {})
    if staff:
        headers["Authorization"] = "Basic " + base64.b64encode(
            ":".join(STAFF).encode()).decode()
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, answer.read(), dict(answer.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


def _leaks(body: bytes, room, name: str) -> list[str]:
    """What of item `name` a page shows: its id, title, collection, file name, words."""
    marks = [room["ids"][name], f"The {name} item", f"{name}-book", _collection(name),
             "Республикасының" if name == "open" else WORDS[name]]
    text = body.decode("utf-8", "replace")
    return [m for m in marks if m in text]


def _routes(room, name: str) -> list[str]:
    """Every route that serves something of an item: its page, viewer, IIIF manifest,
    image information, a tile, thumbnail, access copy, master, collection page."""
    aip = room["ids"][name]
    folder = room["root"] / "access" / aip
    pages = next(folder.glob("*.pages"))
    tile = sorted((pages / "0001").rglob("default.jpg"))[0].relative_to(pages / "0001")
    copy = "open-book.pdf" if name == "open" else f"{name}-book.png.jpg"
    master = "open-book.pdf" if name == "open" else f"{name}-book.png"
    return [f"/aip/{aip}", f"/aip/{aip}/view", f"/aip/{aip}/manifest.json",
            f"/aip/{aip}/iiif/0/info.json", f"/aip/{aip}/iiif/0/{tile.as_posix()}",
            f"/aip/{aip}/thumbnail.jpg", f"/aip/{aip}/copy/{copy}",
            f"/aip/{aip}/master/{master}",
            f"/collection/{urllib.parse.quote(_collection(name))}"]


def _no_content(body: bytes) -> bool:
    return not (body.startswith(b"%PDF") or body.startswith(b"\xff\xd8")
                or body.lstrip().startswith(b"{"))


@pytest.mark.parametrize("name", list(STATES))
def test_every_route_serves_an_item_only_where_its_rights_open_it(room, name):
    """The matrix: every rights state x every route, for a reader and for staff; zero
    bytes of a closed item served, tiles, thumbnails and snippets included."""
    _, public, staff_may = STATES[name]
    base = room["base"]
    for staff in (False, True):
        allowed = staff_may if staff else public
        for route in _routes(room, name):
            status, body, _ = _get(base + route, staff=staff)
            if "/master/" in route:  # masters: never, unless the policy allows (below)
                assert status == 404, route
            elif allowed:
                assert status == 200, (route, status)
            else:
                assert status == 404, (route, staff, status)
                assert _leaks(body, room, name) == [], (route, staff)
                assert _no_content(body), route
        word = "Республикасының" if name == "open" else WORDS[name]
        for route in ("/", f"/search?q={urllib.parse.quote(word)}",
                      f"/search?q={urllib.parse.quote(word)}&collection="
                      f"{urllib.parse.quote(_collection(name))}"):
            status, body, _ = _get(base + route, staff=staff)
            assert status == 200
            body = body.replace(word.encode(), b"")  # the reader's own query, echoed
            assert bool(_leaks(body, room, name)) is allowed, (route, staff,
                                                               _leaks(body, room, name))
    # a closed item and one that never existed answer alike
    if not public:
        missing = _get(f"{base}/aip/00000000-0000-4000-8000-000000000000")
        closed = _get(f"{base}/aip/{room['ids'][name]}")
        assert (missing[0], missing[1]) == (closed[0], closed[1])


def test_the_iiif_manifest_and_tiles_of_an_open_item(room):
    aip, base = room["ids"]["open"], room["base"]
    status, body, headers = _get(f"{base}/aip/{aip}/manifest.json")
    manifest = json.loads(body)
    assert manifest["type"] == "Manifest" and manifest["label"] == {"none": ["The open item"]}
    assert "presentation/3" in headers["content-type"]
    canvas = manifest["items"][0]
    service = canvas["items"][0]["items"][0]["body"]["service"][0]
    assert service == {"id": f"{base}/aip/{aip}/iiif/0", "type": "ImageService3",
                       "profile": "level0"}
    info = json.loads(_get(service["id"] + "/info.json")[1])
    assert info["id"] == service["id"] and (info["width"], info["height"]) == (
        canvas["width"], canvas["height"])
    painted = canvas["items"][0]["items"][0]["body"]["id"]
    status, body, headers = _get(painted)
    assert status == 200 and body.startswith(b"\xff\xd8") and headers["content-type"] == \
        "image/jpeg"


def test_staff_sign_in_with_http_basic(room):
    base, aip = room["base"], room["ids"]["staff"]
    status, _, headers = _get(base + "/staff")
    assert status == 401 and headers["www-authenticate"].startswith("Basic ")
    wrong = {"Authorization": "Basic " + base64.b64encode(b"archivist:wrong").decode()}
    assert _get(f"{base}/aip/{aip}", wrong)[0] == 404
    status, body, _ = _get(f"{base}/aip/{aip}", staff=True)
    assert status == 200 and "Signed in as archivist" in body.decode()
    assert "Open to staff only." in body.decode()


def test_pages_in_the_readers_language(room):
    base = room["base"]
    assert "Оқу залы" in _get(base + "/?lang=kk")[1].decode()
    status, body, headers = _get(base + "/", {"Accept-Language": "ru-RU,ru;q=0.9,en;q=0.5"})
    assert '<html lang="ru">' in body.decode() and "Читальный зал" in body.decode()
    body = _get(base + "/", {"Accept-Language": "de, az;q=0.8"})[1].decode()
    assert "Oxu zalı" in body
    assert "Reading room" in _get(base + "/", {"Accept-Language": "de"})[1].decode()
    status, body, headers = _get(f"{base}/aip/{room['ids']['open']}?lang=az")
    assert "lang=az" in headers["set-cookie"] and "Oxucular üçün açıqdır." in body.decode()
    body = _get(f"{base}/aip/{room['ids']['open']}", {"Cookie": "lang=kk"})[1].decode()
    assert "Оқырмандарға ашық." in body and "Атауы" in body


def test_closed_items_metadata_and_masters_where_the_policy_allows(room, tmp_path):
    """access.closed_items: metadata shows a closed item's description, rights and the
    day it opens, and nothing else; access.masters lets readers download the masters of
    public-domain items only."""
    root = tmp_path / "repo"
    shutil.copytree(room["root"], root)
    policy = root / "policies" / "default.yaml"
    policy.write_text(policy.read_text(encoding="utf-8").replace(
        "closed_items: hidden", "closed_items: metadata").replace(
        "masters: []", "masters: [public-domain]"), encoding="utf-8")
    server, base = _start(root)
    try:
        ids = room["ids"]
        status, body, _ = _get(f"{base}/aip/{ids['closed']}")
        page = body.decode()
        assert status == 200 and "The closed item" in page and "Opens on 2086-01-01." in page
        assert "/copy/" not in page and "thumbnail" not in page and "/view" not in page
        for route in _routes({**room, "root": root}, "closed")[1:-1]:
            status, body, _ = _get(base + route)
            assert status == 404 and _no_content(body), route
        body = _get(f"{base}/aip/{ids['unknown']}")[1].decode()
        assert "No date is set on which it opens." in body
        status, body, _ = _get(f"{base}/aip/{ids['open']}/master/open-book.pdf")
        stored = next(p for p in root.rglob("open-book.pdf") if "content" in p.parts)
        assert status == 200 and body == stored.read_bytes()
        assert _get(f"{base}/aip/{ids['ended']}/master/ended-book.png")[0] == 404  # licensed
    finally:
        server.terminate()
        server.wait(timeout=30)


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
    "/static/../../catalog.sqlite", "/static/..%2F..%2Freading_room.py",
    "/osd/../../../../../preserve.yaml", "/osd/%2e%2e/%2e%2e/package.json",
    "/aip/{open}/iiif/0/../../../../preserve.yaml", "/aip/{open}/iiif/0/..%2F..%2Fopen-book.pdf",
    "/aip/{open}/iiif/0/%2e%2e/%2e%2e/%2e%2e/%2e%2e/catalog.sqlite",
    "/aip/{open}/iiif/0/../vips-properties.xml", "/aip/{open}/iiif/99/info.json",
    "/aip/{open}/iiif/-1/info.json", "/aip/{open}/iiif/0//etc/passwd",
    "/aip/{open}/master/../../preserve.yaml", "/aip/{open}/master/open-book.pdf",
    "/aip/{open}/copy/open-book.pdf.pages/0001/info.json", "/aip/{open}/thumbnail.jpg/..",
    "/aip/{open}/copy/open-book.pdf.thumb.jpg"])
def test_a_path_outside_what_the_manifest_names_is_never_opened(room, route):
    status, body, _ = _get(room["base"] + route.format(open=room["ids"]["open"]))
    assert status == 404, (route, status)
    assert b"format:" not in body and b"root:" not in body and b"SQLite" not in body
    assert _no_content(body) and b"import" not in body


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
    assert _tree(room["root"]) == room["tree"]  # nothing written, made or removed anywhere


def _browser(p):
    return p.chromium.launch(executable_path=shutil.which("chromium"), args=[
        "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"])


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium")
def test_pages_in_a_browser_without_javascript(room, tmp_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = _browser(p)
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
            with page.expect_download() as download:  # a download works without script
                page.click("text=open-book.pdf")
            saved = tmp_path / "got.pdf"
            download.value.save_as(saved)
            aip = room["ids"]["open"]
            assert saved.read_bytes() == (room["root"] / "access" / aip /
                                          "open-book.pdf").read_bytes()
            assert outside == []  # no request to any other host
            assert (tmp_path / "search.png").stat().st_size > 1000
        finally:
            browser.close()


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium")
def test_the_page_viewer_shows_the_page_from_its_tiles(room, tmp_path):
    """OpenSeadragon (from npm, served by the room) draws the page from its level-0
    tiles; every request stays on the room's host and is answered."""
    from playwright.sync_api import sync_playwright

    aip = room["ids"]["open"]
    with sync_playwright() as p:
        browser = _browser(p)
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 900})
            asked, failed, errors = [], [], []
            page.on("request", lambda r: asked.append(r.url))
            page.on("response", lambda r: failed.append((r.url, r.status))
                    if r.status >= 400 else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"{room['base']}/aip/{aip}/view")
            page.wait_for_selector("#viewer[data-loaded=yes]", timeout=30_000)
            page.wait_for_load_state("networkidle")
            page.screenshot(path=str(tmp_path / "viewer.png"))
            assert errors == [] and failed == []
            assert all(u.startswith(room["base"]) for u in asked)
            assert any("/iiif/0/info.json" in u for u in asked)
            assert any(u.endswith("/default.jpg") for u in asked)
            with Image.open(tmp_path / "viewer.png") as shot:  # the page, drawn: black text
                box = page.locator("#viewer").bounding_box()
                area = shot.convert("L").crop((int(box["x"]), int(box["y"]),
                                               int(box["x"] + box["width"]),
                                               int(box["y"] + box["height"])))
                histogram = area.histogram()
                assert sum(histogram[200:]) > 0.2 * sum(histogram)  # a white page...
                assert sum(histogram[:80]) > 50  # ... with dark letters on it
        finally:
            browser.close()


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium")
def test_the_rights_matrix_in_a_browser(room):
    """What Chromium receives, for every rights state x every route, as a reader and as
    signed-in staff: a closed item's routes answer 404 with not one byte of it."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = _browser(p)
        try:
            for staff in (False, True):
                context = browser.new_context(http_credentials={
                    "username": STAFF[0], "password": STAFF[1]} if staff else None)
                if staff:  # the browser answers the sign-in challenge once
                    assert context.new_page().goto(room["base"] + "/staff").status == 200
                page = context.new_page()
                for name, (_, public, staff_may) in STATES.items():
                    allowed = staff_may if staff else public
                    for route in _routes(room, name):
                        if "/copy/" in route or "/master/" in route:  # a download:
                            # fetched as the browser would, its sign-in sent along
                            answer = page.request.get(room["base"] + route, headers={
                                "Authorization": "Basic " + base64.b64encode(
                                    ":".join(STAFF).encode()).decode()} if staff else {})
                        else:
                            answer = page.goto(room["base"] + route)
                        body = answer.body()
                        if "/master/" in route or not allowed:
                            assert answer.status == 404, (name, route, staff)
                            assert _leaks(body, room, name) == [], (name, route, staff)
                            assert _no_content(body), (name, route, staff)
                        else:
                            assert answer.status == 200, (name, route, staff, answer.status)
                    word = "Республикасының" if name == "open" else WORDS[name]
                    answer = page.goto(f"{room['base']}/search?q={urllib.parse.quote(word)}")
                    found = answer.body().replace(word.encode(), b"")
                    assert bool(_leaks(found, room, name)) is allowed, (name, staff)
                context.close()
        finally:
            browser.close()
