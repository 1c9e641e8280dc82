"""Commands on what the repository knows of its AIPs: list, show, describe, and the
catalog compared with another (catalog diff) or rebuilt from storage (catalog rebuild)."""

from __future__ import annotations

from typing import Annotated

import typer

from preserve import render
from preserve.cli.app import JsonOpt, State, copies_missing, open_repo, repo_root, show_progress


def list_aips(
    collection: Annotated[str | None, typer.Option(
        "--collection", "-c", help="Only the AIPs of this collection.")] = None,
    json_out: JsonOpt = False,
):
    """List the AIPs in the repository."""
    repo = open_repo()
    aips = repo.catalog.list_aips(collection)
    if json_out:
        render.emit_json([a.to_dict() for a in aips])
    else:
        render.aip_list(aips)


def show(
    aip: Annotated[str, typer.Argument(help="AIP id (or a unique prefix of 4+ characters).")],
    max_files: Annotated[int, typer.Option(help="Files listed in the table.")] = 50,
    all_events: Annotated[bool, typer.Option(
        "--events", help="List every event (by default: each kind once, its latest).")] = False,
    json_out: JsonOpt = False,
):
    """Show one AIP: its description, versions, files, formats and events."""
    from preserve.data.describe import description_of

    repo = open_repo()
    aip_id = repo.catalog.resolve(aip)
    summary = repo.catalog.get_aip(aip_id)
    files = list(repo.catalog.files(aip_id, summary.version))
    formats = repo.catalog.format_counts(aip_id)
    events = repo.catalog.events(aip_id)
    versions = repo.catalog.versions_of(aip_id)
    derivations = repo.catalog.derivations(aip_id)
    description, unread = description_of(repo, aip_id)
    checks: dict[str, dict] = {}
    for _version, path, check, status, detail, _tools, _when in repo.catalog.validations(aip_id):
        checks.setdefault(path, {})[check] = (status, detail)
    if json_out:
        render.emit_json({**summary.to_dict(), "description": description,
                          "description_unread": unread, "versions": versions,
                          "derivations": [{"version": v, "source": s, "derivative": d,
                                           "rule": r} for v, s, d, r in derivations],
                          "files_list": [{**f.to_dict(), "checks": {
                              c: {"status": st, "detail": d}
                              for c, (st, d) in checks.get(f.path, {}).items()}}
                              for f in files],
                          "formats": [{"puid": p, "format": f, "files": n, "bytes": b}
                                      for p, f, n, b in formats],
                          "events": [e.to_dict() for e in events]})
    else:
        render.aip_show(summary, description or {}, files, formats, events, versions,
                        derivations, max_files=max_files, all_events=all_events,
                        unread=unread, checks=checks)


def describe(
    aip: Annotated[str, typer.Argument(help="AIP id (or a unique prefix of 4+ characters).")],
    title: Annotated[str | None, typer.Option(help="The corrected title.")] = None,
    creator: Annotated[list[str] | None, typer.Option(
        help="Creator (repeatable; replaces every creator).")] = None,
    identifier: Annotated[list[str] | None, typer.Option(
        help="External identifier (repeatable; replaces every one).")] = None,
    rights: Annotated[str | None, typer.Option(help="The corrected rights statement.")] = None,
    note: Annotated[str | None, typer.Option(help="Why: kept in the version and PREMIS.")] = None,
    field: Annotated[list[str] | None, typer.Option(
        "--field", metavar="LABEL=VALUE",
        help="Any other bag-info label (repeatable; replaces that label's values), e.g. "
             "Creator-Death-Date=1951-03-02, which a rights term may count from.")] = None,
    json_out: JsonOpt = False,
):
    """Correct an AIP's description: a new version (bag-info and PREMIS), payload untouched."""
    from preserve.data.describe import Description
    from preserve.data.describe import describe as run_describe

    fields: dict[str, list[str]] = {}
    for given in field or []:
        label, sep, value = given.partition("=")
        if not sep or not label.strip():
            raise typer.BadParameter(f"{given!r}: give LABEL=VALUE", param_hint="--field")
        fields.setdefault(label.strip(), []).append(value.strip())
    repo = open_repo()
    description = Description(title, creator, identifier, rights, note, fields or None)
    result = run_describe(repo, aip, description)
    if json_out:
        render.emit_json({**result.to_dict(), "changed": sorted(description.changed())})
    else:
        render.out.print(f"[bold green]Described[/] AIP {result.aip_id}: version "
                         f"{result.version} corrects {', '.join(sorted(description.changed()))}"
                         f" (stored at {', '.join(result.replicas)})")
    copies_missing(f"AIP {result.aip_id} v{result.version}", result)


def catalog_diff(
    other: Annotated[str, typer.Argument(
        help="The other catalog: a catalog.sqlite file, a repository folder, or a "
             "postgresql:// address.")],
    ignore: Annotated[list[str] | None, typer.Option(
        "--ignore", help="TABLE.COLUMN left out of the comparison (repeatable).")] = None,
    index: Annotated[bool, typer.Option(
        "--index", help="Compare the search index too (bring both up to date first: "
                        "'preserve search' does).")] = False,
    json_out: JsonOpt = False,
):
    """Compare this repository's catalog with another, table by table: rows only one
    holds, and rows whose key both hold with other values. Exit 0 the same, 1 not."""
    from pathlib import Path

    from preserve.catalog import Catalog
    from preserve.catalog.database import is_server_url
    from preserve.data.compare import compare
    from preserve.repository import Repository

    repo = open_repo()
    if is_server_url(other) or not Path(other).is_dir():
        there = Catalog(other if is_server_url(other) else Path(other))
    else:
        there = Repository(Path(other)).catalog
    try:
        result = compare(repo.catalog, there, ignore, index=index)
    finally:
        there.close()
    render.report(result, json_out, render.catalog_diff)
    raise typer.Exit(result.exit_code)


def catalog_rebuild(
    sources: Annotated[list[str] | None, typer.Option(
        "--from", metavar="LOCATION",
        help="Read only this location (repeat for several; default: all).")] = None,
    verify: Annotated[bool, typer.Option(
        "--verify", help="Also re-hash every content file (a full audit on the way).")] = False,
    replace: Annotated[bool, typer.Option(
        "--replace", help="Rebuild over a catalog that is not empty, keeping it aside.")
    ] = False,
    json_out: JsonOpt = False,
):
    """Re-create the catalog from the storage locations alone: AIPs, versions, files with
    their digests and identification, derivations, events, the signed event log and the
    replicas. Into an empty catalog; resumable (run it again after an interruption). Exit
    0 rebuilt, 1 copies disagree or cannot be read (named), 3 a location unreachable."""
    from preserve.data.rebuild import open_for_rebuild, rebuild

    repo, aside = open_for_rebuild(repo_root(), replace)
    State.opened = repo
    with render.progress_bar(show_progress()) as progress:
        result = rebuild(repo, sources=sources, verify=verify, progress=progress, aside=aside)
    render.report(result, json_out, render.rebuild_report)
    raise typer.Exit(result.exit_code)
