"""`preserve serve`: the read-only web reading room (issue 28, first part).

A Starlette application; what it must not show, it never reads:

- read-only by construction: the catalog is opened so that nothing can be written
  through it (SQLite mode=ro and query_only; PostgreSQL read-only transactions), there is
  no route but GET and HEAD, and the only files it opens are access copies named in an
  AIP's access manifest (access/copies.py): no path a reader sends is ever joined to a
  folder;
- every route that names an AIP asks the rights decision first (access/rights.py): a
  closed or unknown AIP answers 404 with a page that says nothing of it, the same page
  for both, so that a reader cannot even learn that a closed item exists; search lists
  open AIPs only (a closed AIP's words, names and snippets never reach a page);
- downloads of access copies answer Range requests (206) so that a large book resumes;
- no script and no request to any other host: pages work with JavaScript off.

The decision is made at each request, so an AIP opens on its day without a restart.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape

from preserve.access.copies import access_root, read_manifest
from preserve.access.rights import Decisions
from preserve.access.search import search
from preserve.errors import PreserveError
from preserve.repository import Repository
from preserve.storage.new_version import current_bag_info

TEMPLATES = Path(__file__).with_name("templates")
SEARCH_LIMIT = 50
SHOWN_LABELS = ("Title", "Creator", "External-Identifier", "External-Description",
                "Source-Organization", "Rights", "Preserve-Collection")


def create_app(root: Path):
    """The reading room of the repository at `root`."""
    from starlette.applications import Starlette
    from starlette.responses import FileResponse, HTMLResponse
    from starlette.routing import Route

    repo = Repository(root, read_only=True)
    pages = Environment(loader=FileSystemLoader(TEMPLATES),
                        autoescape=select_autoescape(["html"]))
    pages.filters["marked"] = marked

    def page(template: str, status: int = 200, **values) -> HTMLResponse:
        return HTMLResponse(pages.get_template(template).render(**values),
                            status_code=status, headers=SECURITY_HEADERS)

    def not_here() -> HTMLResponse:
        return page("not_found.html", 404)

    def open_aip(ref: str):
        """The AIP's summary when it exists and is open today, else None."""
        try:
            aip = repo.catalog.get_aip(ref) if _is_id(ref) else None
        except PreserveError:
            return None
        if aip is None or not Decisions(repo)(aip.id).open:
            return None
        return aip

    async def home(request):
        open_now = _open_aips(repo)
        collections: dict[str, int] = {}
        for aip in open_now:
            collections[aip.collection] = collections.get(aip.collection, 0) + 1
        return page("home.html", collections=sorted(collections.items()))

    async def find(request):
        query = request.query_params.get("q", "").strip()
        collection = request.query_params.get("collection") or None
        hits: list = []
        if query:
            decide = Decisions(repo)
            try:
                found = search(repo.catalog, query, collection=collection,
                               limit=SEARCH_LIMIT, rights=decide)
            except PreserveError:
                found = []
            hits = [h for h in found if not h.closed]  # nothing of a closed AIP is shown
        return page("search.html", query=query, hits=hits, collection=collection)

    async def collection(request):
        name = request.path_params["name"]
        aips = [a for a in _open_aips(repo) if a.collection == name]
        if not aips:
            return not_here()
        return page("collection.html", name=name, aips=aips)

    async def item(request):
        aip = open_aip(request.path_params["aip"])
        if aip is None:
            return not_here()
        fields = [(label, value) for label, value in current_bag_info(repo, aip.id)
                  if label in SHOWN_LABELS]
        copies = sorted(read_manifest(access_root(repo), aip.id))
        return page("item.html", aip=aip, fields=fields, copies=copies,
                    decision=Decisions(repo)(aip.id))

    async def download(request):
        aip = open_aip(request.path_params["aip"])
        if aip is None:
            return not_here()
        wanted = "data/" + request.path_params["path"]
        manifest = read_manifest(access_root(repo), aip.id)
        if wanted not in manifest:  # only what the manifest names is ever opened
            return not_here()
        path = access_root(repo) / aip.id / wanted[5:]
        if not path.is_file():
            return not_here()
        return FileResponse(path, filename=Path(wanted).name, headers=SECURITY_HEADERS)

    routes = [Route("/", home), Route("/search", find),
              Route("/collection/{name}", collection), Route("/aip/{aip}", item),
              Route("/aip/{aip}/copy/{path:path}", download)]
    app = Starlette(routes=routes)
    app.state.repository = repo
    return app


# No script, no frame, no request to any other host; nothing cached by a shared cache.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self' 'unsafe-inline'; "
                               "img-src 'self'; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "private, no-store",
}


def marked(snippet: str):
    """A snippet as HTML: escaped, its [matches] marked."""
    import re

    from markupsafe import Markup, escape

    parts = re.split(r"\[([^\[\]]+)\]", snippet)
    return Markup("".join(f"<mark>{escape(p)}</mark>" if n % 2 else str(escape(p))
                          for n, p in enumerate(parts)))


def _is_id(ref: str) -> bool:
    """A whole AIP identifier (a reader never reaches an AIP by a prefix)."""
    import uuid

    try:
        return str(uuid.UUID(ref)) == ref
    except ValueError:
        return False


def _open_aips(repo: Repository) -> list:
    decide = Decisions(repo, dt.datetime.now(dt.UTC).date())
    return [a for a in repo.catalog.list_aips() if decide(a.id).open]


def serve(root: Path, host: str = "127.0.0.1", port: int = 8080) -> None:
    """Run the reading room until stopped (Ctrl-C)."""
    import uvicorn

    uvicorn.run(create_app(root), host=host, port=port, log_level="warning",
                server_header=False, proxy_headers=False)
