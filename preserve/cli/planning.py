"""Preservation Planning commands: formats, migrate, reidentify."""

from __future__ import annotations

from typing import Annotated

import typer

from preserve import render
from preserve.cli.app import (
    JsonOpt,
    QueueOpt,
    WorkersOpt,
    enqueue_aips,
    enqueued,
    named_or_all,
    open_repo,
    show_progress,
)


def formats(
    aips: Annotated[list[str] | None, typer.Argument(help="AIPs (default: all).")] = None,
    collection: Annotated[str | None, typer.Option(help="Only this collection.")] = None,
    json_out: JsonOpt = False,
):
    """Risk report: every format held, its risk and action by the format policy, files
    awaiting migration, and whether the pathway's tools work on this machine."""
    from preserve.planning.formats import report

    rows = report(open_repo(), aips, collection)
    if json_out:
        render.emit_json([r.to_dict() for r in rows])
    else:
        render.formats_report(rows)


def migrate(
    aips: Annotated[list[str] | None, typer.Argument(help="AIPs (default: all).")] = None,
    do_plan: Annotated[bool, typer.Option("--plan", help="Show what would be done (the "
                                          "default).")] = False,
    do_apply: Annotated[bool, typer.Option("--apply", help="Do it: convert, prove, and add "
                                           "a version to each AIP changed.")] = False,
    collection: Annotated[str | None, typer.Option(help="Only this collection.")] = None,
    puid: Annotated[str | None, typer.Option(help="Only files of this PRONOM PUID.")] = None,
    workers: WorkersOpt = None,
    retry: Annotated[bool, typer.Option(
        "--retry", help="Try again files whose last migration was not kept, even where "
                        "nothing it depends on has changed, and deferred ones.")] = False,
    do_defer: Annotated[bool, typer.Option("--defer", help="Record a decision not to migrate "
                                           "the selected files for now (needs --reason): "
                                           "--plan shows it, --apply leaves them until "
                                           "--retry.")] = False,
    files: Annotated[list[str] | None, typer.Option(
        "--file", help="With --defer: only this payload file (data/...; repeatable).")] = None,
    reason: Annotated[str | None, typer.Option(help="Why the files are deferred (kept with "
                                               "the decision).")] = None,
    queued: QueueOpt = False,
    json_out: JsonOpt = False,
):
    """Format migration by policy: derivatives beside the originals, each proven (re-
    identified, decoded content compared) before it is kept. Exit 0 all migrated (or
    nothing new to try, or deferred), 1 some failed or could not be proven, 3 a tool
    missing."""
    from preserve.planning.migrate import apply, defer, format_policy, last_attempts, plan

    if sum((do_plan, do_apply, do_defer)) > 1:
        raise typer.BadParameter("give one of --plan, --apply and --defer", param_hint="--apply")
    if (files or reason is not None) and not do_defer:
        raise typer.BadParameter("--file and --reason go with --defer", param_hint="--defer")
    if do_defer:
        if reason is None:
            raise typer.BadParameter("say why with --reason", param_hint="--reason")
        deferred = defer(open_repo(), aips, collection, puid, files, reason)
        if json_out:
            render.emit_json(deferred)
        else:
            render.deferral_report(deferred)
        return
    if queued and not do_apply:
        raise typer.BadParameter("a queued migration is an --apply", param_hint="--queue")
    repo = open_repo()
    if not do_apply:
        candidates = plan(repo, aips, collection, puid)
        unchanged = {} if retry else last_attempts(repo, format_policy(repo), candidates)
        if json_out:
            render.emit_json([{**c.to_dict(), "last_outcome_unchanged":
                               unchanged.get((c.aip_id, c.source))} for c in candidates])
        else:
            render.migration_plan(candidates, unchanged)
        return
    if queued:
        from preserve.admin.tasks import enqueue_per_aip

        due = sorted({c.aip_id for c in plan(repo, aips, collection, puid)})
        enqueued("migrate", enqueue_per_aip(repo, "migrate", due, puid=puid), json_out)
        return
    with render.progress_bar(show_progress()) as progress:
        result = apply(repo, aips, collection, puid, workers=workers, progress=progress,
                       retry=retry)
    render.report(result, json_out, render.migration_report)
    raise typer.Exit(result.exit_code)


def reidentify(
    aips: Annotated[list[str] | None, typer.Argument(
        help="AIPs to identify again (or --all).")] = None,
    all_aips: Annotated[bool, typer.Option("--all", help="Every AIP.")] = False,
    json_out: JsonOpt = False,
):
    """Identify the stored files again (after a PRONOM update): changed PUIDs reported and
    recorded (PREMIS), the format policy applied to the new answer."""
    from preserve.planning.formats import reidentify as run_reidentify

    named_or_all(aips, all_aips)
    repo = open_repo()
    with render.progress_bar(show_progress()) as progress:
        result = run_reidentify(repo, None if all_aips else aips, progress=progress)
    render.report(result, json_out, render.reidentify_report)
    raise typer.Exit(result.exit_code)


def validate_files(
    aips: Annotated[list[str] | None, typer.Argument(
        help="AIPs whose stored files to validate (or --all).")] = None,
    all_aips: Annotated[bool, typer.Option("--all", help="Every AIP.")] = False,
    workers: WorkersOpt = None,
    queued: QueueOpt = False,
    json_out: JsonOpt = False,
):
    """Validate the stored files again (after a validator was added or improved): a PREMIS
    validation event per file, no new version; exit 1 if a file is damaged."""
    from preserve.planning.validate_files import validate_stored

    named_or_all(aips, all_aips)
    repo = open_repo()
    if queued:
        enqueue_aips(repo, "validate-files", aips, all_aips, json_out)
        return
    with render.progress_bar(show_progress()) as progress:
        result = validate_stored(repo, None if all_aips else aips, workers=workers,
                                 progress=progress)
    render.report(result, json_out, render.validation_report)
    raise typer.Exit(result.exit_code)
