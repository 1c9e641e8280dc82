"""`preserve serve`: the read-only web reading room (issue 28).

A Starlette application; what it must not show, it never reads:

- read-only by construction: the catalog is opened so that nothing can be written
  through it (SQLite mode=ro and query_only; PostgreSQL read-only transactions), no route
  answers but GET and HEAD, and the only files it opens are those an AIP's access
  manifest names (access/copies.py), a tile inside a page folder a manifest names, or a
  preservation master the catalog lists where the policy's `access.masters` allows it: a
  path a reader sends is never joined to a folder unchecked;
- every route that names an AIP asks the rights decision first (access/rights.py), made
  at each request, so that an AIP opens on its day without a restart. A closed AIP, or
  one open to staff only and asked for by a reader who has not signed in, answers 404
  with the page a missing one gets: manifest, tiles, thumbnail, downloads and search
  snippets alike. With `access.closed_items: metadata` its item page shows its
  description, its rights and the day it opens, and nothing else of it;
- pages work with JavaScript off (search, items, downloads, players); the page viewer
  (OpenSeadragon, installed from npm by scripts/setup.sh, served from here) needs it; no
  request goes to any other host;
- pages in Kazakh, Azerbaijani, Russian or English (access/messages.py); staff sign in
  with HTTP Basic against the staff file (access/staff.py).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import uuid
from dataclasses import dataclass
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape

from preserve.access import iiif, messages
from preserve.access.copies import access_root, read_manifest
from preserve.access.rights import Decisions
from preserve.access.search import search
from preserve.access.staff import STAFF_FILE, Staff
from preserve.domain import ocfl
from preserve.errors import PreserveError
from preserve.repository import Repository
from preserve.storage.new_version import current_bag_info

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
# OpenSeadragon, installed from npm by scripts/setup.sh (never copied into the repository)
VIEWER = HERE / "viewer" / "node_modules" / "openseadragon" / "build" / "openseadragon"
SEARCH_LIMIT = 50
SHOWN_LABELS = ("Title", "Creator", "External-Identifier", "External-Description",
                "Source-Organization", "Rights", "Preserve-Collection")
MANIFEST_BYTES_KEPT = 32 * 1024 * 1024  # IIIF manifests kept made, the oldest let go first
TILE_PART = re.compile(r"^[A-Za-z0-9,.!^:_-]+$")  # a segment of a IIIF tile's path


@dataclass
class Reader:
    language: str
    user: str | None  # a signed-in staff member's name
    translate: object


@dataclass
class Item:
    aip: object
    decision: object
    shown: str  # "open": everything; "metadata": its description and rights only


def create_app(root: Path, *, staff_file: Path | None = None, public_url: str | None = None,
               viewer: Path | None = None):
    """The reading room of the repository at `root`."""
    from starlette.applications import Starlette
    from starlette.responses import FileResponse, HTMLResponse, RedirectResponse, Response
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    repo = Repository(root, read_only=True)
    staff = Staff(staff_file or repo.root / STAFF_FILE)
    viewer = viewer if viewer is not None else VIEWER
    has_viewer = (viewer / "openseadragon.min.js").is_file()
    pages = Environment(loader=FileSystemLoader(TEMPLATES),
                        autoescape=select_autoescape(["html"]))
    pages.filters["marked"] = marked
    manifests = ManifestCache(access_root(repo))
    made_manifests = KeptText(MANIFEST_BYTES_KEPT)
    kept = PerVersion()

    def decision_of(aip):
        """The rights decision of the AIP today: it changes only with a new version (a
        statement, a description) or a new day (a term runs out)."""
        today = dt.datetime.now(dt.UTC).date()
        return kept.get(("decision", aip.id, aip.version, today),
                        lambda: Decisions(repo, today)(aip.id))

    def bag_info(aip) -> list:
        return kept.get(("bag-info", aip.id, aip.version),
                        lambda: current_bag_info(repo, aip.id))

    def reader_of(request) -> Reader:
        language = messages.choose(request.query_params.get("lang"),
                                   request.cookies.get("lang"),
                                   request.headers.get("accept-language"))
        return Reader(language, staff.user(request.headers.get("authorization")),
                      messages.translator(language))

    def page(request, template: str, status: int = 200, **values) -> HTMLResponse:
        reader = reader_of(request)
        response = HTMLResponse(pages.get_template(template).render(
            _=reader.translate, lang=reader.language, languages=messages.LANGUAGES,
            user=reader.user, **{"path": request.url.path, **values}), status_code=status)
        asked = request.query_params.get("lang")
        if asked in messages.LANGUAGES:
            response.set_cookie("lang", asked, max_age=365 * 86400, samesite="lax",
                                httponly=True)
        return response

    def not_here(request) -> HTMLResponse:
        return page(request, "not_found.html", 404, path="/")  # the address is not echoed

    def item_for(request, *, metadata_too: bool = False) -> Item | None:
        """The AIP the address names when this reader may see it, else None."""
        ref = request.path_params["aip"]
        try:
            aip = repo.catalog.get_aip(ref) if _is_id(ref) else None
        except PreserveError:
            return None
        if aip is None:
            return None
        decision = decision_of(aip)
        if decision.open and (not decision.staff_only or staff.user(
                request.headers.get("authorization"))):
            return Item(aip, decision, "open")
        if metadata_too and repo.policy.access.closed_items == "metadata":
            return Item(aip, decision, "metadata")
        return None

    listed: dict[tuple, list] = {}

    def visible_aips(request) -> list:
        """The AIPs this reader may see, decided once per catalog state, day and kind of
        reader (not once per AIP per request: a catalog of 100,000 AIPs)."""
        signed_in = staff.user(request.headers.get("authorization")) is not None
        stamp = tuple(repo.catalog.execute(
            "SELECT COUNT(*), MAX(created) FROM versions WHERE state = 'stored'").fetchone())
        key = (stamp, dt.datetime.now(dt.UTC).date(), signed_in)
        if key not in listed:
            listed.clear() if len(listed) > 8 else None
            listed[key] = [a for a in repo.catalog.list_aips()
                           if decision_of(a).open and (signed_in or
                                                       not decision_of(a).staff_only)]
        return listed[key]

    def base_url(request) -> str:
        return (public_url or str(request.base_url)).rstrip("/")

    async def home(request):
        collections: dict[str, int] = {}
        for aip in visible_aips(request):
            collections[aip.collection] = collections.get(aip.collection, 0) + 1
        return page(request, "home.html", collections=sorted(collections.items()))

    async def find(request):
        query = request.query_params.get("q", "").strip()
        collection = request.query_params.get("collection") or None
        hits: list = []
        if query:
            decide = Decisions(repo)
            signed_in = staff.user(request.headers.get("authorization")) is not None
            try:
                found = search(repo.catalog, query, collection=collection,
                               limit=SEARCH_LIMIT, rights=decide)
            except PreserveError:
                found = []
            # nothing of a closed AIP is shown, nor of a staff-only one to a reader
            hits = [h for h in found if not h.closed
                    and (signed_in or not decide(h.aip).staff_only)]
        return page(request, "search.html", query=query, hits=hits, collection=collection)

    async def collection(request):
        name = request.path_params["name"]
        aips = [a for a in visible_aips(request) if a.collection == name]
        if not aips:
            return not_here(request)
        return page(request, "collection.html", name=name, aips=aips)

    async def item(request):
        found = item_for(request, metadata_too=True)
        if found is None:
            return not_here(request)
        aip = found.aip
        fields = [(label, value) for label, value in bag_info(aip) if label in SHOWN_LABELS]
        if found.shown != "open":
            return page(request, "item.html", aip=aip, fields=fields, decision=found.decision,
                        shown=found.shown, copies=[], players=[], pages=0, masters=[],
                        thumbnail=False)
        copies = manifests.get(aip.id)
        downloads = [name for entry in copies.values() for name in entry["files"]]
        players = [(entry["player"], next(iter(entry["files"])))
                   for entry in copies.values() if entry.get("player") and entry["files"]]
        return page(request, "item.html", aip=aip, fields=fields, decision=found.decision,
                    shown="open", copies=downloads, players=players,
                    pages=sum(len(e["pages"]) for e in copies.values()),
                    masters=_masters(repo, aip, found.decision),
                    thumbnail=any(e.get("thumbnail") for e in copies.values()))

    async def view(request):
        found = item_for(request)
        if found is None or not iiif.canvases(manifests.get(found.aip.id)):
            return not_here(request)
        aip_id = found.aip.id
        sources = [f"/aip/{aip_id}/iiif/{n}/info.json"
                   for n in range(len(iiif.canvases(manifests.get(aip_id))))]
        return page(request, "viewer.html", aip=found.aip, sources=json.dumps(sources),
                    has_viewer=has_viewer)

    async def manifest(request):
        found = item_for(request)
        if found is None or not iiif.canvases(manifests.get(found.aip.id)):
            return not_here(request)
        aip = found.aip
        path = iiif.manifest_path(access_root(repo), aip.id)
        key = (aip.id, aip.version, manifests.stamp(aip.id), base_url(request))
        body = made_manifests.get(key)
        if body is None:  # once per AIP version, copies and address
            try:
                template = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                return not_here(request)
            fields = [(label, value) for label, value in bag_info(aip)
                      if label in SHOWN_LABELS]
            body = iiif.served(template, base_url(request), aip.title or aip.id, fields)
            made_manifests.put(key, body)
        return Response(body, media_type="application/ld+json;profile="
                        '"http://iiif.io/api/presentation/3/context.json"')

    async def tile(request):
        found = item_for(request)
        if found is None:
            return not_here(request)
        canvases = iiif.canvases(manifests.get(found.aip.id))
        number, rest = request.path_params["n"], request.path_params["rest"]
        if not 0 <= number < len(canvases):
            return not_here(request)
        folder = access_root(repo) / found.aip.id / canvases[number]["tiles"]
        parts = rest.split("/")
        if not all(TILE_PART.match(p) and p not in (".", "..") for p in parts):
            return not_here(request)
        path = folder.joinpath(*parts)
        try:
            inside = path.resolve(strict=True).is_relative_to(folder.resolve(strict=True))
        except OSError:
            return not_here(request)
        if not inside or not path.is_file():
            return not_here(request)
        if rest == "info.json":
            info = json.loads(path.read_text(encoding="utf-8"))
            info["id"] = f"{base_url(request)}/aip/{found.aip.id}/iiif/{number}"
            return Response(json.dumps(info), media_type="application/ld+json;profile="
                            '"http://iiif.io/api/image/3/context.json"')
        return small_file(path)

    async def thumbnail(request):
        found = item_for(request)
        if found is None:
            return not_here(request)
        for entry in manifests.get(found.aip.id).values():
            if entry.get("thumbnail"):
                path = access_root(repo) / found.aip.id / entry["thumbnail"]
                if path.is_file():
                    return small_file(path)
        return not_here(request)

    async def download(request):
        found = item_for(request)
        if found is None:
            return not_here(request)
        wanted = request.path_params["path"]
        copies = manifests.get(found.aip.id)
        # only what a manifest names is ever opened
        if not any(wanted in entry["files"] for entry in copies.values()):
            return not_here(request)
        path = access_root(repo) / found.aip.id / wanted
        if not path.is_file():
            return not_here(request)
        return FileResponse(path, filename=Path(wanted).name)

    async def master(request):
        found = item_for(request)
        if found is None:
            return not_here(request)
        wanted = "data/" + request.path_params["path"]
        held = {path: version for path, version in _masters(repo, found.aip, found.decision)}
        if wanted not in held:
            return not_here(request)
        location = repo.primary_location()
        key = ocfl.key_of(ocfl.version_key(ocfl.object_root(found.aip.id), held[wanted]),
                          wanted)
        path = location.root / key
        if not path.is_file():
            return not_here(request)
        return FileResponse(path, filename=Path(wanted).name)

    async def sign_in(request):
        if staff.user(request.headers.get("authorization")) is None:
            return Response("Staff sign-in required.", status_code=401, headers={
                "WWW-Authenticate": 'Basic realm="preserve reading room", charset="UTF-8"'})
        return RedirectResponse("/", status_code=303)

    routes = [Route("/", home), Route("/search", find), Route("/staff", sign_in),
              Route("/collection/{name}", collection), Route("/aip/{aip}", item),
              Route("/aip/{aip}/view", view),
              Route("/aip/{aip}/manifest.json", manifest),
              Route("/aip/{aip}/iiif/{n:int}/{rest:path}", tile),
              Route("/aip/{aip}/thumbnail.jpg", thumbnail),
              Route("/aip/{aip}/copy/{path:path}", download),
              Route("/aip/{aip}/master/{path:path}", master),
              Mount("/static", StaticFiles(directory=STATIC), name="static")]
    if has_viewer:
        routes.append(Mount("/osd", StaticFiles(directory=viewer), name="osd"))
    app = Starlette(routes=routes)
    app.state.repository = repo
    return SecurityHeaders(app)


# No script but our own, no frame, no request to any other host; nothing cached by a
# shared cache (what a reader sees depends on rights, language and sign-in).
SECURITY_HEADERS = [
    (b"content-security-policy",
     b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
     b"connect-src 'self'; media-src 'self'; form-action 'self'; frame-ancestors 'none'; "
     b"base-uri 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"private, no-store"),
    (b"vary", b"Authorization, Cookie, Accept-Language"),
]


class SecurityHeaders:
    """ASGI middleware: the headers above on every response, the static files' too."""

    def __init__(self, app):
        self.app = app
        self.state = app.state

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                names = {name for name, _ in SECURITY_HEADERS}
                message["headers"] = [(k, v) for k, v in message.get("headers", [])
                                      if k.lower() not in names] + SECURITY_HEADERS
            await send(message)

        await self.app(scope, receive, send_with_headers)


SMALL = 256 * 1024  # a tile or thumbnail: read at once, not streamed by worker threads


def small_file(path: Path):
    """A JPEG tile or thumbnail. Tiles are small and many: read in one call rather than
    streamed through a thread per chunk (FileResponse), which costs more than the bytes."""
    from starlette.responses import FileResponse, Response

    if path.stat().st_size > SMALL:
        return FileResponse(path, media_type="image/jpeg")
    return Response(path.read_bytes(), media_type="image/jpeg")


class PerVersion:
    """Values computed once per key (an AIP version, a day), the oldest let go first."""

    def __init__(self, size: int = 4096):
        self.size, self.values = size, {}

    def get(self, key: tuple, compute):
        if key not in self.values:
            if len(self.values) >= self.size:
                self.values.pop(next(iter(self.values)))
            self.values[key] = compute()
        return self.values[key]


class KeptText:
    """Texts by key, at most `limit` characters in all, the oldest let go first: the
    server's memory stays bounded however many items readers open."""

    def __init__(self, limit: int):
        self.limit, self.size, self.values = limit, 0, {}

    def get(self, key: tuple) -> str | None:
        return self.values.get(key)

    def put(self, key: tuple, text: str) -> None:
        while self.values and self.size + len(text) > self.limit:
            self.size -= len(self.values.pop(next(iter(self.values))))
        self.values[key] = text
        self.size += len(text)


class ManifestCache:
    """Each AIP's access manifest, read again only when its file changes; the manifests
    of the `size` AIPs read last are kept."""

    def __init__(self, root: Path, size: int = 2048):
        self.root, self.seen, self.size = root, {}, size

    def stamp(self, aip_id: str) -> tuple | None:
        try:
            st = (self.root / f"{aip_id}.json").stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def get(self, aip_id: str) -> dict:
        stamp = self.stamp(aip_id)
        if stamp is None:
            return {}
        if self.seen.get(aip_id, (None,))[0] != stamp:
            if len(self.seen) >= self.size:
                self.seen.pop(next(iter(self.seen)))
            self.seen[aip_id] = (stamp, read_manifest(self.root, aip_id))
        return self.seen[aip_id][1]


def _masters(repo: Repository, aip, decision) -> list[tuple[str, int]]:
    """(path, version holding it) of the payload files a reader may download as they are
    kept: only where the policy's `access.masters` names the AIP's rights status."""
    allowed = repo.policy.access.masters
    statement = repo.catalog.rights_statement(aip.id) if allowed else None
    if not decision.open or statement is None or statement.status not in allowed:
        return []
    return [(path, version) for path, version, _, _ in
            repo.catalog.state_files(aip.id, aip.version) if path.startswith("data/")]


def marked(snippet: str):
    """A snippet as HTML: escaped, its [matches] marked."""
    from markupsafe import Markup, escape

    parts = re.split(r"\[([^\[\]]+)\]", snippet)
    return Markup("".join(f"<mark>{escape(p)}</mark>" if n % 2 else str(escape(p))
                          for n, p in enumerate(parts)))


def _is_id(ref: str) -> bool:
    """A whole AIP identifier (a reader never reaches an AIP by a prefix)."""
    try:
        return str(uuid.UUID(ref)) == ref
    except ValueError:
        return False


ROOM_SETTINGS = "PRESERVE_READING_ROOM"  # the settings each worker process starts from


def app_from_environment():
    """The application of a worker process (`serve --workers N`), from its settings."""
    settings = json.loads(os.environ[ROOM_SETTINGS])
    return create_app(Path(settings["root"]), public_url=settings["public_url"],
                      staff_file=Path(settings["staff_file"]) if settings["staff_file"]
                      else None)


def serve(root: Path, host: str = "127.0.0.1", port: int = 8080, *,
          staff_file: Path | None = None, public_url: str | None = None,
          workers: int = 1) -> None:
    """Run the reading room until stopped (Ctrl-C): `workers` processes on one socket
    (each its own read-only catalog connection), so that every core serves readers."""
    import uvicorn

    options = {"host": host, "port": port, "log_level": "warning", "server_header": False,
               "proxy_headers": False}
    if workers <= 1:
        uvicorn.run(create_app(root, staff_file=staff_file, public_url=public_url),
                    **options)
        return
    os.environ[ROOM_SETTINGS] = json.dumps({
        "root": str(root), "public_url": public_url,
        "staff_file": str(staff_file) if staff_file else None})
    uvicorn.run("preserve.access.reading_room:app_from_environment", factory=True,
                workers=workers, **options)
