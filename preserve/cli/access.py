"""Commands that give AIPs out: export, search, and the text search finds (extract)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from preserve import render
from preserve.cli.app import (
    JsonOpt,
    QueueOpt,
    WorkersOpt,
    enqueue_aips,
    named_or_all,
    open_repo,
    show_progress,
)


def export(
    aip: Annotated[str, typer.Argument(help="AIP id (or a unique prefix).")],
    dest: Annotated[Path, typer.Argument(help="New folder to write the bag into.")],
    version: Annotated[int | None, typer.Option(help="AIP version (default: latest).")] = None,
    location: Annotated[str | None, typer.Option(help="Read from this location.")] = None,
    override_rights: Annotated[str | None, typer.Option(
        "--override-rights", metavar="REASON",
        help="Export an AIP its rights close; the reason is recorded with your name.")
    ] = None,
    json_out: JsonOpt = False,
):
    """Write an AIP out as a BagIt bag, verifying every byte on the way. An AIP its rights
    close is refused (exit 1) unless --override-rights says why."""
    from preserve.access.export import export as run_export

    repo = open_repo()
    with render.progress_bar(show_progress()) as progress:
        result = run_export(repo, aip, dest, version=version, location=location,
                            progress=progress, override_rights=override_rights)
    if json_out:
        render.emit_json(result.to_dict())
    else:
        render.out.print(f"[bold green]Exported[/] AIP {result.aip_id} v{result.version} to "
                         f"{render.text(result.destination)} ({result.files} files, "
                         f"{result.bytes} bytes, all verified, read from {result.location})")


def extract(
    aips: Annotated[list[str] | None, typer.Argument(
        help="AIPs whose stored files to extract text from (or --all).")] = None,
    all_aips: Annotated[bool, typer.Option("--all", help="Every AIP.")] = False,
    workers: WorkersOpt = None,
    queued: QueueOpt = False,
    json_out: JsonOpt = False,
):
    """Extract the full text of stored files (text layers, office documents, OCR of scans)
    and keep it in each AIP as a new version; then index it for search. Exit 1 if a
    file gave no text."""
    from preserve.data.extract import extract_stored
    from preserve.data.search_index import refresh

    named_or_all(aips, all_aips)
    repo = open_repo()
    if queued:
        enqueue_aips(repo, "extract", aips, all_aips, json_out)
        return
    with render.progress_bar(show_progress()) as progress:
        result = extract_stored(repo, None if all_aips else aips, workers=workers,
                                progress=progress)
        result.problems += refresh(repo, progress).problems
    render.report(result, json_out, render.extract_report)
    raise typer.Exit(result.exit_code)


def search(
    query: Annotated[str, typer.Argument(help="Words to find (every one must be found).")],
    collection: Annotated[str | None, typer.Option(help="Only this collection.")] = None,
    format_puid: Annotated[str | None, typer.Option(
        "--format", help="Only files of this PRONOM id (e.g. fmt/276).")] = None,
    aip: Annotated[str | None, typer.Option("--aip", help="Only this AIP.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="Hits to show.")] = 20,
    json_out: JsonOpt = False,
):
    """Find AIPs and files by words in their description, names, formats and full text:
    ranked, each with a snippet and its page. Kazakh, Azerbaijani, Russian and English
    as people type them. Exit 1 when nothing is found."""
    from preserve.access.rights import Decisions
    from preserve.access.search import search as run_search
    from preserve.data.search_index import refresh

    repo = open_repo()
    with render.progress_bar(show_progress()) as progress:
        refreshed = refresh(repo, progress)  # AIPs changed since they were indexed
    for problem in refreshed.problems:
        render.err.print(f"[yellow]warning:[/] {render.text(problem)}")
    aip_id = repo.catalog.resolve(aip) if aip else None
    hits = run_search(repo.catalog, query, collection=collection, puid=format_puid,
                      aip_id=aip_id, limit=limit, rights=Decisions(repo))
    if json_out:
        render.emit_json({"query": query, "hits": [h.to_dict() for h in hits],
                          "warnings": refreshed.problems})
    else:
        render.search_report(query, hits)
    raise typer.Exit(0 if hits else 1)


def rights(
    args: Annotated[list[str], typer.Argument(
        metavar="AIP | explain AIP | review",
        help="The AIP to record a statement for; 'explain AIP' to say whether it is "
             "open, when it opens, and why; 'review' (daily, from cron) to record each "
             "AIP whose access changed as a PREMIS event.")],
    status: Annotated[str | None, typer.Option(
        help="copyrighted, public-domain, licensed or unknown.")] = None,
    holder: Annotated[str | None, typer.Option(help="The rights holder.")] = None,
    jurisdiction: Annotated[str | None, typer.Option(
        help="Where the status holds (a country code: kz, az, ru...).")] = None,
    basis: Annotated[str | None, typer.Option(
        help="The law, contract or finding the statement rests on.")] = None,
    license_uri: Annotated[str | None, typer.Option(
        "--license", help="The licence's URI (status licensed).")] = None,
    embargo_until: Annotated[str | None, typer.Option(
        help="Closed before this date (YYYY-MM-DD), whatever else holds.")] = None,
    opens_after: Annotated[int | None, typer.Option(
        "--opens-after", metavar="YEARS",
        help="Copyrighted: opens this many years after --from-date or --from-field.")] = None,
    from_date: Annotated[str | None, typer.Option(help="The date the years count from.")
                         ] = None,
    from_field: Annotated[str | None, typer.Option(
        help="The bag-info label holding that date (e.g. Creator-Death-Date).")] = None,
    counting: Annotated[str | None, typer.Option(
        help="year-end (to the end of that year, the default) or exact (to the day).")
    ] = None,
    note: Annotated[str | None, typer.Option(help="Why: kept with the statement.")] = None,
    audience: Annotated[str | None, typer.Option(
        help="staff: the reading room shows the AIP, when open, to signed-in staff only "
             "(public: to everyone, the default).")] = None,
    on: Annotated[str | None, typer.Option(
        help="explain: decide as on this date (YYYY-MM-DD) instead of today.")] = None,
    json_out: JsonOpt = False,
):
    """Record a rights statement as a new version (PREMIS rights), or explain the
    decision: open or closed, the rule chain, the date it opens."""
    from preserve.access.rights import decision, record_rights
    from preserve.domain.rights import RightsStatement, parse_date

    repo = open_repo()
    if args == ["review"]:
        from preserve.access.rights import review

        changed = review(repo, parse_date(on) if on else None)
        if json_out:
            render.emit_json({"changed": changed})
        else:
            render.out.print(f"{len(changed)} AIP(s) whose access changed, recorded")
            for c in changed:
                render.out.print(f"  AIP {c['aip']}: {c['before'] or 'not reviewed'} -> "
                                 f"{c['now']}")
        return
    if args[:1] == ["explain"]:
        if len(args) != 2:
            raise typer.BadParameter("name one AIP: preserve rights explain AIP",
                                     param_hint="AIP")
        day = parse_date(on) if on else None
        if on and day is None:
            raise typer.BadParameter("give the date as YYYY-MM-DD", param_hint="--on")
        aip_id = repo.catalog.resolve(args[1])
        decided = decision(repo, aip_id, day)
        if json_out:
            render.emit_json({"aip": aip_id, **decided.to_dict()})
        else:
            render.rights_report(aip_id, decided)
        return
    if len(args) != 1 or status is None:
        raise typer.BadParameter("name one AIP and give --status", param_hint="AIP")
    statement = RightsStatement(status, holder, jurisdiction, basis, license_uri,
                                embargo_until, opens_after, from_date, from_field, counting,
                                note, audience)
    result = record_rights(repo, args[0], statement)
    decided = decision(repo, result.aip_id)
    if json_out:
        render.emit_json({**result.to_dict(), "statement": statement.identifier,
                          "decision": decided.to_dict()})
    else:
        render.out.print(f"[bold green]Recorded[/] rights statement {statement.identifier} "
                         f"as AIP {result.aip_id} v{result.version}")
        render.rights_report(result.aip_id, decided)


def access_build(
    aips: Annotated[list[str] | None, typer.Argument(
        help="AIPs whose access copies to make (or --all).")] = None,
    all_aips: Annotated[bool, typer.Option("--all", help="Every AIP.")] = False,
    workers: WorkersOpt = None,
    queued: QueueOpt = False,
    json_out: JsonOpt = False,
):
    """Make the access copies that are missing or stale, from the AIPs, by the policy's
    `access.copies`: PDF/A with a text layer for documents, JPEG and IIIF tiles for
    images, Opus or MP3 for sound, MP4 or WebM for video. Kept in the access location,
    never in the AIPs; each recorded as an event. Exit 1 if one could not be made."""
    from preserve.access.copies import build

    named_or_all(aips, all_aips)
    repo = open_repo()
    if queued:
        enqueue_aips(repo, "access-build", aips, all_aips, json_out)
        return
    with render.progress_bar(show_progress()) as progress:
        result = build(repo, None if all_aips else aips, workers=workers, progress=progress)
    render.report(result, json_out, render.access_report)
    raise typer.Exit(result.exit_code)


def access_staff(
    args: Annotated[list[str], typer.Argument(
        metavar="add NAME | remove NAME | list",
        help="Add a staff member of the reading room (the password is asked for, or read "
             "from standard input with --password-stdin), remove one, or list them.")],
    password_stdin: Annotated[bool, typer.Option(
        "--password-stdin", help="Read the password from standard input.")] = False,
):
    """The reading room's staff, who see what rights open to staff only (HTTP Basic
    against staff.users in the repository: serve it over TLS only)."""
    from preserve.access.staff import STAFF_FILE, add_user, read_users, remove_user

    repo = open_repo()
    path = repo.root / STAFF_FILE
    if args == ["list"]:
        for name in sorted(read_users(path)):
            render.out.print(render.text(name))
        return
    if len(args) != 2 or args[0] not in ("add", "remove"):
        raise typer.BadParameter("say 'add NAME', 'remove NAME' or 'list'", param_hint="ARGS")
    if args[0] == "remove":
        if not remove_user(path, args[1]):
            render.err.print(f"no staff member {render.text(args[1])} in {render.text(path)}")
            raise typer.Exit(1)
        render.out.print(f"Removed {render.text(args[1])}")
        return
    import sys

    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    new = add_user(path, args[1], password)
    render.out.print(f"{'Added' if new else 'Changed the password of'} "
                     f"{render.text(args[1])} ({render.text(path)})")


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on (loopback by default: "
                                           "put a reverse proxy with TLS in front).")
                    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port.")] = 8080,
    public_url: Annotated[str | None, typer.Option(
        help="The address readers use (e.g. https://library.example/room), for the IIIF "
             "identifiers; default: the address each request came to.")] = None,
    staff_file: Annotated[Path | None, typer.Option(
        help="The staff users file (default: staff.users in the repository).")] = None,
    workers: Annotated[int | None, typer.Option(
        min=1, max=64, help="Server processes (default: one per core).")] = None,
):
    """The read-only web reading room: search, collections, items, the page viewer and
    downloads of access copies, for what rights open today; nothing else is ever read or
    shown."""
    from preserve.access.reading_room import serve as run_serve
    repo = open_repo()
    root = repo.root
    repo.close()
    render.err.print(f"reading room of {render.text(root)} on http://{host}:{port}/ "
                     "(Ctrl-C stops it)")
    from preserve.parallel import default_workers

    run_serve(root, host, port, staff_file=staff_file, public_url=public_url,
              workers=workers or default_workers())
