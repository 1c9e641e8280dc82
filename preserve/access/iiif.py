"""IIIF Presentation 3 manifests of an AIP's pages (issue 28).

`access build` makes each AIP's manifest with iiif-prezi3 (its models check what they
hold) once its copies change, and keeps it beside the access manifest
(`<AIP>.iiif.json`), with a stand-in for the address readers use: the reading room
puts in that address and the item's title and description as they are now, so that
serving a manifest costs a JSON load, not a model built again (a book of 100 pages
takes iiif-prezi3 some 70 ms: research in benchmarks/reading_room.py).

Each canvas is painted by its page's level-0 image service (the tiles of
access/makers.py): the service's largest whole-page image where libvips made one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

BASE = "https://preserve.invalid/reading-room"  # stands in for the reading room's address


def canvases(copies: dict) -> list[dict]:
    """The viewer's pages of an AIP, in the order of their sources' paths."""
    return [page for _, entry in sorted(copies.items()) for page in entry.get("pages", [])]


def manifest_path(root: Path, aip_id: str) -> Path:
    return root / f"{aip_id}.iiif.json"


def write_manifest(root: Path, aip_id: str, copies: dict) -> None:
    """The AIP's IIIF manifest as its copies now stand (none: no pages, no file)."""
    from iiif_prezi3 import Manifest

    pages = canvases(copies)
    path = manifest_path(root, aip_id)
    if not pages:
        path.unlink(missing_ok=True)
        return
    url = f"{BASE}/aip/{aip_id}"
    m = Manifest(id=f"{url}/manifest.json", label={"none": [aip_id]})
    for n, page in enumerate(pages):
        service = f"{url}/iiif/{n}"
        canvas = m.make_canvas(id=f"{url}/canvas/{n}", label={"none": [str(n + 1)]},
                               height=page["height"], width=page["width"])
        full = page.get("full")
        painted = canvas.add_image(
            image_url=f"{service}/{full}" if full else f"{url}/thumbnail.jpg",
            anno_page_id=f"{url}/page/{n}", anno_id=f"{url}/annotation/{n}",
            format="image/jpeg", height=page["height"], width=page["width"])
        painted.items[0].body.make_service(id=service, type="ImageService3",
                                           profile="level0")
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    partial.write_text(m.json(indent=None), encoding="utf-8")
    os.replace(partial, path)


def served(template: dict, base: str, title: str, fields: list[tuple[str, str]]) -> str:
    """The kept manifest for a reader: the reading room's address, the item's title and
    its description's fields as they are now."""
    data = dict(template)
    data["label"] = {"none": [title]}
    data["metadata"] = [{"label": {"en": [label]}, "value": {"none": [value]}}
                        for label, value in fields]
    return json.dumps(data, ensure_ascii=False).replace(BASE, base)
