"""Commands that set up a repository and take material in: init, ingest, validate, identify."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from preserve import render
from preserve.cli.app import (
    JsonOpt,
    QueueOpt,
    WorkersOpt,
    copies_missing,
    enqueued,
    open_repo,
    repo_root,
    show_progress,
)
from preserve.errors import EXIT_OK, EXIT_PROBLEMS


def init(
    catalog: Annotated[str | None, typer.Option(
        help="A PostgreSQL catalog shared by many machines (postgresql://user@host/db; the "
             "password from PGPASSWORD or ~/.pgpass). Default: PRESERVE_CATALOG, else SQLite "
             "in the repository.")] = None,
    json_out: JsonOpt = False,
):
    """Create a repository (configuration, catalog, default local location, policies)."""
    from preserve.repository import Repository

    repo, created = Repository.init(repo_root(), catalog or os.environ.get("PRESERVE_CATALOG"))
    if json_out:
        render.emit_json({"repository": str(repo.root), "created": created})
    else:
        render.out.print(f"Repository ready at [bold]{render.text(repo.root)}[/]")
        for c in created:
            render.out.print(f"  created {render.text(c)}")
        if not created:
            render.out.print("  (everything was already there; nothing changed)")


def ingest(
    source: Annotated[Path, typer.Argument(help="A folder, a BagIt bag, a .zip or a .tar[.gz].")],
    collection: Annotated[str, typer.Option("--collection", "-c", help="Collection name.")],
    title: Annotated[str | None, typer.Option(help="Title of the AIP.")] = None,
    creator: Annotated[list[str] | None, typer.Option(help="Creator (repeatable).")] = None,
    identifier: Annotated[list[str] | None, typer.Option(
        help="External identifier (repeatable).")] = None,
    rights: Annotated[str | None, typer.Option(help="Rights statement.")] = None,
    links: Annotated[str | None, typer.Option(
        help="Symbolic links: refuse, skip or follow-inside (default: policy).")] = None,
    special: Annotated[str | None, typer.Option(
        help="Devices, FIFOs, sockets: refuse or skip (default: policy).")] = None,
    case_collisions: Annotated[str | None, typer.Option(
        help="Names equal but for case: refuse or allow (default: policy).")] = None,
    strict: Annotated[bool, typer.Option(
        "--strict", help="Refuse a bag that validates only with warnings.")] = False,
    as_folder: Annotated[bool, typer.Option(
        "--as-folder", help="Ingest a bag (even an invalid one) as a plain folder: its "
        "manifests kept as payload, its digests checked and reported; a zipped or tarred "
        "bag as a plain archive.")] = False,
    refuse_duplicate: Annotated[bool, typer.Option(
        "--refuse-duplicate", help="Store nothing when an AIP holds the same content "
        "already (by default a second AIP is made, and the first one named).")] = False,
    workers: WorkersOpt = None,
    queued: QueueOpt = False,
    json_out: JsonOpt = False,
):
    """Ingest SOURCE as a new AIP; print its id and a summary."""
    from dataclasses import replace

    from preserve.domain.policy import COLLISION_CHOICES, LINK_CHOICES, SPECIAL_CHOICES
    from preserve.ingest.ingest import Metadata
    from preserve.ingest.ingest import ingest as run_ingest

    for value, choices, name in ((links, LINK_CHOICES, "--links"),
                                 (special, SPECIAL_CHOICES, "--special"),
                                 (case_collisions, COLLISION_CHOICES, "--case-collisions")):
        if value is not None and value not in choices:
            raise typer.BadParameter(f"must be one of {', '.join(choices)}", param_hint=name)
    repo = open_repo()
    policy = repo.policy.ingest
    policy = replace(policy, links=links or policy.links,
                     special_files=special or policy.special_files,
                     case_collisions=case_collisions or policy.case_collisions)
    meta = Metadata(collection, title, creator or [], identifier or [], rights)
    if queued:
        from preserve.admin.tasks import enqueue_ingest

        job, aip = enqueue_ingest(repo, source, meta)
        enqueued("ingest", [job], json_out, aip=aip)
        return
    with render.progress_bar(show_progress()) as progress:
        result = run_ingest(repo, source, meta, policy=policy, workers=workers, progress=progress,
                            strict=strict, as_folder=as_folder,
                            refuse_duplicate=refuse_duplicate)
        result.text = extract_after_ingest(repo, result.aip_id, workers, progress)
    render.report(result, json_out, render.ingest_summary)
    copies_missing(f"AIP {result.aip_id}", result)


def validate(
    bag: Annotated[Path, typer.Argument(help="The bag folder to validate.")],
    fast: Annotated[bool, typer.Option(
        "--fast", help="Structure and completeness only; do not re-hash the files.")] = False,
    workers: WorkersOpt = None,
    json_out: JsonOpt = False,
):
    """Strict RFC 8493 validation of any bag: exit 0 valid (warnings printed), 1 invalid."""
    from preserve.ingest.validation import validate_bag
    from preserve.parallel import default_workers

    with render.progress_bar(show_progress()) as progress:
        report = validate_bag(bag, check_fixity=not fast, workers=workers or default_workers(),
                              progress=progress.advance,
                              on_totals=lambda n, b: progress.start("validate", n, b))
    (render.validation_json if json_out else render.validation)(report)
    report.findings.close()
    raise typer.Exit(EXIT_OK if report.valid else EXIT_PROBLEMS)


def identify(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders.")],
    json_out: JsonOpt = False,
):
    """PRONOM PUID, format and MIME type of each file (folders are walked)."""
    from preserve.ingest.identify import identify_tree

    rows = identify_tree(paths)
    if json_out:
        render.emit_json([{"path": p, **i.to_dict()} for p, i in rows])
    else:
        render.identifications(rows)
    if any(i.error for _, i in rows):
        raise typer.Exit(EXIT_PROBLEMS)


def extract_after_ingest(repo, aip_id: str, workers: int | None, progress) -> dict | None:
    """The new AIP's full text, as a version of its own, where policy asks (text.extract:
    on); then indexed. A file that gives no text leaves the ingest as it is: named, and
    `preserve extract` tries it again."""
    if repo.policy.text.extract != "on":
        return None
    from preserve.data.extract import extract_stored
    from preserve.data.search_index import index_aip
    from preserve.errors import PreserveError

    try:
        done = extract_stored(repo, [aip_id], workers=workers, progress=progress)
        index_aip(repo, aip_id)
    except PreserveError as e:
        return {"error": e.message, "hint": "run 'preserve extract' once it is put right"}
    return done.to_dict()
