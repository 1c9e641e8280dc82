"""Archival Storage commands: replicate, audit, repair, check, the storage locations, and
the event log."""

from __future__ import annotations

from typing import Annotated

import typer

from preserve import render
from preserve.cli.app import JsonOpt, QueueOpt, WorkersOpt, enqueued, open_repo, show_progress
from preserve.errors import EXIT_PROBLEMS, EXIT_UNREACHABLE, PreserveError


def replicate(
    to: Annotated[str | None, typer.Option("--to", help="Only this location.")] = None,
    queued: QueueOpt = False,
    json_out: JsonOpt = False,
):
    """Bring every AIP up to the copies policy asks for; verified, resumable."""
    from preserve.storage.replicate import replicate as run_replicate

    repo = open_repo()
    if to and to not in repo.locations:
        raise typer.BadParameter(f"no location '{to}' (see 'preserve storage list')",
                                 param_hint="--to")
    if queued:
        from preserve.admin.tasks import enqueue_per_aip

        targets = [to] if to else [loc.name for loc in repo.replica_locations()]
        lacking = {}
        for name in targets:
            for aip_id, _version in repo.catalog.versions_without_replica(name):
                lacking.setdefault(aip_id, set()).add(name)
        jobs = [j for aip_id, names in sorted(lacking.items())
                for j in enqueue_per_aip(repo, "replicate", [aip_id], locations=sorted(names))]
        enqueued("replicate", jobs, json_out)
        return
    with render.progress_bar(show_progress()) as progress:
        result = run_replicate(repo, to=to, progress=progress)
    render.report(result, json_out, render.replication)
    if result.unreachable or result.full:
        raise typer.Exit(EXIT_UNREACHABLE)
    if result.failed:
        raise typer.Exit(EXIT_PROBLEMS)


def audit(
    aips: Annotated[list[str] | None, typer.Argument(help="AIPs (default: all).")] = None,
    all_aips: Annotated[bool, typer.Option("--all", help="Every AIP (the default).")] = False,
    location: Annotated[str | None, typer.Option(help="Only replicas at this location.")] = None,
    full: Annotated[bool, typer.Option(
        "--full", help="Re-read and re-hash every byte (default: quick).")] = False,
    do_repair: Annotated[bool, typer.Option(
        "--repair", help="Then repair what is damaged from good replicas.")] = False,
    due: Annotated[bool, typer.Option(
        "--due", help="Only what the fixity policy says is due (for cron/systemd).")] = False,
    sample: Annotated[float | None, typer.Option(
        help="Verify this share of all files (0-1), least recently verified first.")] = None,
    restart: Annotated[bool, typer.Option(
        "--restart", help="Start afresh instead of continuing an unfinished audit.")] = False,
    budget: Annotated[str | None, typer.Option(
        help="Stop after this much reading or time: e.g. 500GB, 2h, 30m.")] = None,
    workers: WorkersOpt = None,
    queued: QueueOpt = False,
    json_out: JsonOpt = False,
):
    """Fixity audit of every replica: exit 0 all good, 1 damage found (or audits overdue),
    3 unreachable. With --queue, one job per AIP copy."""
    from preserve.admin.schedule import parse_budget
    from preserve.storage.audit import audit as run_audit

    if do_repair:
        repair(aips=None if all_aips else aips, json_out=json_out)
        return
    repo = open_repo()
    if location and location not in repo.locations:
        raise typer.BadParameter(f"no location '{location}'", param_hint="--location")
    if sample is not None and not 0 < sample <= 1:
        raise typer.BadParameter("must be above 0 and at most 1", param_hint="--sample")
    budget_bytes, budget_seconds = parse_budget(budget) if budget else (None, None)
    if queued:
        from preserve.admin.tasks import audit_copies, enqueue_audits

        if sample is not None or budget:
            raise typer.BadParameter("a queued audit is of whole AIP copies: use --full, "
                                     "--due or neither", param_hint="--queue")
        copies = audit_copies(repo, None if all_aips else aips, location)
        mode = "full" if full else ("due" if due else "quick")
        enqueued("audit", enqueue_audits(repo, copies, mode), json_out)
        return
    with render.progress_bar(show_progress()) as progress:
        result = run_audit(repo, aips=None if all_aips else aips, location=location, full=full,
                           due=due, sample=sample, budget_bytes=budget_bytes,
                           budget_seconds=budget_seconds, workers=workers, restart=restart,
                           progress=progress)
    render.report(result, json_out, render.audit_report)
    raise typer.Exit(result.exit_code)


def repair(
    aips: Annotated[list[str] | None, typer.Argument(help="AIPs (default: all).")] = None,
    queued: QueueOpt = False,
    json_out: JsonOpt = False,
):
    """Full audit, then restore damaged replica files from verified good copies."""
    from preserve.storage.repair import repair as run_repair

    repo = open_repo()
    if queued:
        from preserve.admin.tasks import enqueue_per_aip

        chosen = [repo.catalog.resolve(a) for a in aips] if aips else \
            [a.id for a in repo.catalog.list_aips()]
        enqueued("repair", enqueue_per_aip(repo, "repair", chosen), json_out)
        return
    with render.progress_bar(show_progress()) as progress:
        result = run_repair(repo, aips=aips, progress=progress)
    render.report(result, json_out, render.repair_report)
    raise typer.Exit(result.exit_code)


def check(
    fix: Annotated[bool, typer.Option(
        "--fix", help="Remove what is provably debris of interrupted runs.")] = False,
    json_out: JsonOpt = False,
):
    """Compare the catalog with every location: copies missing or incomplete, copies not
    recorded, leftovers of interrupted runs. Exit 0 consistent, 1 not, 3 unreachable."""
    from preserve.storage.check import check as run_check

    repo = open_repo()
    result = run_check(repo, fix=fix)
    render.report(result, json_out, render.check_report)
    raise typer.Exit(result.exit_code)


def storage_add(
    name: Annotated[str, typer.Argument(help="A short name, e.g. offsite-s3.")],
    url: Annotated[str, typer.Argument(help="A folder path, or s3://BUCKET[/PREFIX].")],
    endpoint_url: Annotated[str | None, typer.Option(help="S3-compatible endpoint.")] = None,
    region: Annotated[str | None, typer.Option(
        help="The store's region (AWS: eu-west-1...; most other stores: any, e.g. "
             "us-east-1).")] = None,
    addressing_style: Annotated[str | None, typer.Option(help="auto, path or virtual.")] = None,
    storage_class: Annotated[str | None, typer.Option(help="e.g. STANDARD_IA.")] = None,
    lock_mode: Annotated[str | None, typer.Option(help="GOVERNANCE or COMPLIANCE.")] = None,
    lock_days: Annotated[int | None, typer.Option(help="Object Lock retention.")] = None,
    checksum: Annotated[str | None, typer.Option(
        help="when_supported (default) or when_required for stores that reject the SDK's "
             "checksum headers.")] = None,
    profile: Annotated[str | None, typer.Option(help="AWS profile for credentials.")] = None,
    media: Annotated[str | None, typer.Option(help="e.g. 'LTO-9 tape', 'hard disk'.")] = None,
    lifetime_years: Annotated[float | None, typer.Option(help="Expected lifetime.")] = None,
    role: Annotated[str | None, typer.Option(
        help="preservation (default) or access: the folder of access copies the reading "
             "room serves, never used for preservation copies.")] = None,
):
    """Define a storage location (writes locations/NAME.yaml; never any secret)."""
    from preserve.storage.locations import add_location

    file = add_location(open_repo(), name, url, endpoint_url=endpoint_url, region=region,
                        addressing_style=addressing_style, storage_class=storage_class,
                        lock_mode=lock_mode, lock_days=lock_days, checksum=checksum,
                        profile=profile, media=media, lifetime_years=lifetime_years,
                        role=role)
    if role == "access":
        render.out.print(f"Access location [bold]{render.text(name)}[/] written to "
                         f"{render.text(file)}: 'preserve access build' keeps copies there.")
        return
    render.out.print(f"Location [bold]{render.text(name)}[/] written to {render.text(file)}; "
                     f"'preserve storage check {render.text(name)}' tests it, and listing it "
                     "under replication.locations in the policy puts copies there.")


def storage_list(json_out: JsonOpt = False):
    """Every location: reachable? its medium's age against its expected service life,
    SMART health, free space, what it holds, and warnings (a medium ageing out, AIP
    versions whose only copy is there, fewer copies than policy asks)."""
    from preserve.storage.locations import location_statuses

    statuses = location_statuses(open_repo())
    if json_out:
        render.emit_json([s.to_dict() for s in statuses])
    else:
        render.locations(statuses)
    if any(not s.reachable for s in statuses):
        raise typer.Exit(EXIT_UNREACHABLE)


def storage_migrate(
    source: Annotated[str, typer.Argument(metavar="FROM", help="The location to empty.")],
    target: Annotated[str, typer.Argument(metavar="TO", help="Where its copies go.")],
    retire: Annotated[bool, typer.Option(
        "--retire", help="Then delete the copies at FROM (each only once its copy at TO is "
        "verified) and mark FROM retired.")] = False,
    plan_only: Annotated[bool, typer.Option(
        "--plan", help="Only say what would move: AIPs, bytes, an estimate of the "
        "time.")] = False,
    queued: QueueOpt = False,
    json_out: JsonOpt = False,
):
    """Move every AIP copy off a location (media refresh): copy to TO, verify every byte
    there, record it; with --retire, only then remove it at FROM. Resumable. Exit 0 done,
    1 problems (something stays at FROM), 3 a location unreachable."""
    from preserve.storage.media_migration import migrate_location, plan

    repo = open_repo()
    if queued:
        from preserve.admin.tasks import enqueue_per_aip

        chosen = [m.aip for m in plan(repo, source, target, retire=retire).moves]
        enqueued("storage-migrate", enqueue_per_aip(repo, "storage-migrate", chosen,
                                                    source=source, target=target,
                                                    retire=retire), json_out)
        return
    with render.progress_bar(show_progress() and not plan_only) as progress:
        result = migrate_location(repo, source, target, retire=retire, plan_only=plan_only,
                                  progress=progress)
    render.report(result, json_out, render.storage_migration)
    raise typer.Exit(result.exit_code)


def storage_check(name: Annotated[str, typer.Argument()], json_out: JsonOpt = False):
    """Write, read back and delete a probe at a location; say what works."""
    repo = open_repo()
    if name not in repo.locations:
        raise typer.BadParameter(f"no location '{name}' (see 'preserve storage list')",
                                 param_hint="NAME")
    location = repo.locations[name]
    try:
        location.check_reachable()
        steps = location.round_trip()
    except PreserveError as e:
        steps = [("reach", False, e.message)]
    if json_out:
        render.emit_json({"location": name, "ok": all(ok for _, ok, _ in steps),
                          "steps": [{"step": s, "ok": ok, "detail": d} for s, ok, d in steps]})
    else:
        for step, ok, detail in steps:
            mark = "[green]ok[/]" if ok else "[red]FAILED[/]"
            render.out.print(f"{step:7s} {mark}  {render.text(detail)}")
    if not all(ok for _, ok, _ in steps):
        raise typer.Exit(EXIT_UNREACHABLE)


def log_verify(
    against: Annotated[typer.FileText | None, typer.Option(
        "--against", help="Also check against a checkpoint kept outside the repository "
        "(a file 'preserve log checkpoint' printed).")] = None,
    json_out: JsonOpt = False,
):
    """Check the event log: the catalog's against its signed checkpoints, every location's
    copy, and every object's logs/ and versions. Exit 0 whole, 1 problems, 3 a location
    unreachable."""
    from preserve.storage.log_check import verify

    report = verify(open_repo(), against=against.read() if against else None)
    render.report(report, json_out, render.log_verify)
    raise typer.Exit(report.exit_code)


def log_checkpoint(json_out: JsonOpt = False):
    """Print the newest signed checkpoint of the event log (its size and root, signed), to
    keep outside the repository."""
    from preserve.domain.checkpoint import parse
    from preserve.storage.history import newest_checkpoint

    note = newest_checkpoint(open_repo())
    if json_out:
        checkpoint, _ = parse(note)
        render.emit_json({"origin": checkpoint.origin, "size": checkpoint.size,
                          "root": checkpoint.root.hex(), "note": note})
    else:
        render.log_checkpoint(note)
