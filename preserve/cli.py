"""The `preserve` command: parses arguments, calls one service, renders the result.

No logic lives here. Errors are mapped to messages and exit codes in one
place (main): 0 success, 1 problems found, 2 usage or configuration,
3 storage unreachable or tool failure, 130 interrupted.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from preserve import __version__, render
from preserve.errors import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_PROBLEMS,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    PreserveError,
)

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                  help="preserve: a long-term digital preservation repository.")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print a JSON document instead of tables.")]
WorkersOpt = Annotated[int | None, typer.Option("--workers", min=1,
                                                help="Worker processes (default: all cores).")]
QueueOpt = Annotated[bool, typer.Option(
    "--queue", help="Enqueue jobs for 'preserve worker' instead of running here (a "
    "PostgreSQL catalog); prints the job ids.")]


class State:
    repo_dir: Path | None = None


def _repo_root() -> Path:
    from preserve.repository import default_root

    return State.repo_dir or default_root()


def _open_repo():
    from preserve.repository import Repository

    return Repository(_repo_root())


def _show_progress() -> bool:
    """Progress goes to stderr, so it never mixes with --json; only a terminal gets it."""
    return sys.stderr.isatty() and os.environ.get("PRESERVE_NO_PROGRESS") is None


@app.callback()
def _global(
    repo: Annotated[Path | None, typer.Option(
        "--repo", help="Repository folder (default: $PRESERVE_REPO, else ./storage).")] = None,
    version: Annotated[bool, typer.Option(
        "--version", help="Print the version.", is_eager=True,
        callback=lambda given: _print_version() if given else None)] = False,
):
    State.repo_dir = repo


def _print_version() -> None:
    """`preserve --version` alone (issue 22: it said "Missing command")."""
    render.out.print(f"preserve {__version__}")
    raise typer.Exit(EXIT_OK)


@app.command()
def init(
    catalog: Annotated[str | None, typer.Option(
        help="A PostgreSQL catalog shared by many machines (postgresql://user@host/db; the "
             "password from PGPASSWORD or ~/.pgpass). Default: PRESERVE_CATALOG, else SQLite "
             "in the repository.")] = None,
    json_out: JsonOpt = False,
):
    """Create a repository (configuration, catalog, default local location, policies)."""
    from preserve.repository import Repository

    repo, created = Repository.init(_repo_root(), catalog or os.environ.get("PRESERVE_CATALOG"))
    if json_out:
        render.emit_json({"repository": str(repo.root), "created": created})
    else:
        render.out.print(f"Repository ready at [bold]{render.text(repo.root)}[/]")
        for c in created:
            render.out.print(f"  created {render.text(c)}")
        if not created:
            render.out.print("  (everything was already there; nothing changed)")


@app.command()
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
    repo = _open_repo()
    policy = repo.policy.ingest
    policy = replace(policy, links=links or policy.links,
                     special_files=special or policy.special_files,
                     case_collisions=case_collisions or policy.case_collisions)
    meta = Metadata(collection, title, creator or [], identifier or [], rights)
    if queued:
        from preserve.admin.tasks import enqueue_ingest

        job, aip = enqueue_ingest(repo, source, meta)
        _enqueued("ingest", [job], json_out, aip=aip)
        return
    with render.progress_bar(_show_progress()) as progress:
        result = run_ingest(repo, source, meta, policy=policy, workers=workers, progress=progress,
                            strict=strict, as_folder=as_folder,
                            refuse_duplicate=refuse_duplicate)
    render.report(result, json_out, render.ingest_summary)
    _copies_missing(f"AIP {result.aip_id}", result)


@app.command()
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

    with render.progress_bar(_show_progress()) as progress:
        report = validate_bag(bag, check_fixity=not fast, workers=workers or default_workers(),
                              progress=progress.advance,
                              on_totals=lambda n, b: progress.start("validate", n, b))
    (render.validation_json if json_out else render.validation)(report)
    report.findings.close()
    raise typer.Exit(EXIT_OK if report.valid else EXIT_PROBLEMS)


@app.command()
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


@app.command("list")
def list_aips(
    collection: Annotated[str | None, typer.Option(
        "--collection", "-c", help="Only the AIPs of this collection.")] = None,
    json_out: JsonOpt = False,
):
    """List the AIPs in the repository."""
    repo = _open_repo()
    aips = repo.catalog.list_aips(collection)
    if json_out:
        render.emit_json([a.to_dict() for a in aips])
    else:
        render.aip_list(aips)


@app.command()
def show(
    aip: Annotated[str, typer.Argument(help="AIP id (or a unique prefix of 4+ characters).")],
    max_files: Annotated[int, typer.Option(help="Files listed in the table.")] = 50,
    all_events: Annotated[bool, typer.Option(
        "--events", help="List every event (by default: each kind once, its latest).")] = False,
    json_out: JsonOpt = False,
):
    """Show one AIP: its description, versions, files, formats and events."""
    from preserve.data.describe import description_of

    repo = _open_repo()
    aip_id = repo.catalog.resolve(aip)
    summary = repo.catalog.get_aip(aip_id)
    files = list(repo.catalog.files(aip_id, summary.version))
    formats = repo.catalog.format_counts(aip_id)
    events = repo.catalog.events(aip_id)
    versions = repo.catalog.versions_of(aip_id)
    derivations = repo.catalog.derivations(aip_id)
    description, unread = description_of(repo, aip_id)
    if json_out:
        render.emit_json({**summary.to_dict(), "description": description,
                          "description_unread": unread, "versions": versions,
                          "derivations": [{"version": v, "source": s, "derivative": d,
                                           "rule": r} for v, s, d, r in derivations],
                          "files_list": [f.to_dict() for f in files],
                          "formats": [{"puid": p, "format": f, "files": n, "bytes": b}
                                      for p, f, n, b in formats],
                          "events": [e.to_dict() for e in events]})
    else:
        render.aip_show(summary, description or {}, files, formats, events, versions,
                        derivations, max_files=max_files, all_events=all_events,
                        unread=unread)


@app.command()
def describe(
    aip: Annotated[str, typer.Argument(help="AIP id (or a unique prefix of 4+ characters).")],
    title: Annotated[str | None, typer.Option(help="The corrected title.")] = None,
    creator: Annotated[list[str] | None, typer.Option(
        help="Creator (repeatable; replaces every creator).")] = None,
    identifier: Annotated[list[str] | None, typer.Option(
        help="External identifier (repeatable; replaces every one).")] = None,
    rights: Annotated[str | None, typer.Option(help="The corrected rights statement.")] = None,
    note: Annotated[str | None, typer.Option(help="Why: kept in the version and PREMIS.")] = None,
    json_out: JsonOpt = False,
):
    """Correct an AIP's description: a new version (bag-info and PREMIS), payload untouched."""
    from preserve.data.describe import Description
    from preserve.data.describe import describe as run_describe

    repo = _open_repo()
    description = Description(title, creator, identifier, rights, note)
    result = run_describe(repo, aip, description)
    if json_out:
        render.emit_json({**result.to_dict(), "changed": sorted(description.changed())})
    else:
        render.out.print(f"[bold green]Described[/] AIP {result.aip_id}: version "
                         f"{result.version} corrects {', '.join(sorted(description.changed()))}"
                         f" (stored at {', '.join(result.replicas)})")
    _copies_missing(f"AIP {result.aip_id} v{result.version}", result)


def _copies_missing(what: str, result) -> None:
    """Exit 3 naming the locations an ingest or a new version could not be copied to: it is
    stored (at result.replicas), and `preserve replicate` makes the rest."""
    if result.replication_problems:
        render.failure(f"{what} is stored at {', '.join(result.replicas)}, but "
                       f"{len(result.replication_problems)} of the copies policy asks for could "
                       "not be made", "run 'preserve replicate' once the location is back",
                       result.replication_problems)
        raise typer.Exit(EXIT_UNREACHABLE)


@app.command()
def export(
    aip: Annotated[str, typer.Argument(help="AIP id (or a unique prefix).")],
    dest: Annotated[Path, typer.Argument(help="New folder to write the bag into.")],
    version: Annotated[int | None, typer.Option(help="AIP version (default: latest).")] = None,
    location: Annotated[str | None, typer.Option(help="Read from this location.")] = None,
    json_out: JsonOpt = False,
):
    """Write an AIP out as a BagIt bag, verifying every byte on the way."""
    from preserve.access.export import export as run_export

    repo = _open_repo()
    with render.progress_bar(_show_progress()) as progress:
        result = run_export(repo, aip, dest, version=version, location=location,
                            progress=progress)
    if json_out:
        render.emit_json(result.to_dict())
    else:
        render.out.print(f"[bold green]Exported[/] AIP {result.aip_id} v{result.version} to "
                         f"{render.text(result.destination)} ({result.files} files, "
                         f"{result.bytes} bytes, all verified, read from {result.location})")


def _interrupted() -> None:
    render.err.print("[bold yellow]interrupted:[/] stopped cleanly; nothing half-written was left "
                     "behind. Run the same command again to do the work.")


@app.command()
def replicate(
    to: Annotated[str | None, typer.Option("--to", help="Only this location.")] = None,
    queued: QueueOpt = False,
    json_out: JsonOpt = False,
):
    """Bring every AIP up to the copies policy asks for; verified, resumable."""
    from preserve.storage.replicate import replicate as run_replicate

    repo = _open_repo()
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
        _enqueued("replicate", jobs, json_out)
        return
    with render.progress_bar(_show_progress()) as progress:
        result = run_replicate(repo, to=to, progress=progress)
    render.report(result, json_out, render.replication)
    if result.unreachable or result.full:
        raise typer.Exit(EXIT_UNREACHABLE)
    if result.failed:
        raise typer.Exit(EXIT_PROBLEMS)


@app.command()
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
    repo = _open_repo()
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
        _enqueued("audit", enqueue_audits(repo, copies, mode), json_out)
        return
    with render.progress_bar(_show_progress()) as progress:
        result = run_audit(repo, aips=None if all_aips else aips, location=location, full=full,
                           due=due, sample=sample, budget_bytes=budget_bytes,
                           budget_seconds=budget_seconds, workers=workers, restart=restart,
                           progress=progress)
    render.report(result, json_out, render.audit_report)
    raise typer.Exit(result.exit_code)


@app.command()
def repair(
    aips: Annotated[list[str] | None, typer.Argument(help="AIPs (default: all).")] = None,
    queued: QueueOpt = False,
    json_out: JsonOpt = False,
):
    """Full audit, then restore damaged replica files from verified good copies."""
    from preserve.storage.repair import repair as run_repair

    repo = _open_repo()
    if queued:
        from preserve.admin.tasks import enqueue_per_aip

        chosen = [repo.catalog.resolve(a) for a in aips] if aips else \
            [a.id for a in repo.catalog.list_aips()]
        _enqueued("repair", enqueue_per_aip(repo, "repair", chosen), json_out)
        return
    with render.progress_bar(_show_progress()) as progress:
        result = run_repair(repo, aips=aips, progress=progress)
    render.report(result, json_out, render.repair_report)
    raise typer.Exit(result.exit_code)


@app.command()
def formats(
    aips: Annotated[list[str] | None, typer.Argument(help="AIPs (default: all).")] = None,
    collection: Annotated[str | None, typer.Option(help="Only this collection.")] = None,
    json_out: JsonOpt = False,
):
    """Risk report: every format held, its risk and action by the format policy, files
    awaiting migration, and whether the pathway's tools work on this machine."""
    from preserve.planning.formats import report

    rows = report(_open_repo(), aips, collection)
    if json_out:
        render.emit_json([r.to_dict() for r in rows])
    else:
        render.formats_report(rows)


@app.command()
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
                        "nothing it depends on has changed.")] = False,
    queued: QueueOpt = False,
    json_out: JsonOpt = False,
):
    """Format migration by policy: derivatives beside the originals, each proven (re-
    identified, decoded content compared) before it is kept. Exit 0 all migrated (or
    nothing new to try), 1 some failed or could not be proven, 3 a tool missing."""
    from preserve.planning.migrate import apply, format_policy, last_attempts, plan

    if do_plan and do_apply:
        raise typer.BadParameter("give --plan or --apply, not both", param_hint="--apply")
    if queued and not do_apply:
        raise typer.BadParameter("a queued migration is an --apply", param_hint="--queue")
    repo = _open_repo()
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
        _enqueued("migrate", enqueue_per_aip(repo, "migrate", due, puid=puid), json_out)
        return
    with render.progress_bar(_show_progress()) as progress:
        result = apply(repo, aips, collection, puid, workers=workers, progress=progress,
                       retry=retry)
    render.report(result, json_out, render.migration_report)
    raise typer.Exit(result.exit_code)


@app.command()
def reidentify(
    aips: Annotated[list[str] | None, typer.Argument(
        help="AIPs to identify again (or --all).")] = None,
    all_aips: Annotated[bool, typer.Option("--all", help="Every AIP.")] = False,
    json_out: JsonOpt = False,
):
    """Identify the stored files again (after a PRONOM update): changed PUIDs reported and
    recorded (PREMIS), the format policy applied to the new answer."""
    from preserve.planning.formats import reidentify as run_reidentify

    if not aips and not all_aips:
        raise typer.BadParameter("name AIPs, or give --all", param_hint="AIPS")
    repo = _open_repo()
    with render.progress_bar(_show_progress()) as progress:
        result = run_reidentify(repo, None if all_aips else aips, progress=progress)
    render.report(result, json_out, render.reidentify_report)
    raise typer.Exit(result.exit_code)


@app.command()
def check(
    fix: Annotated[bool, typer.Option(
        "--fix", help="Remove what is provably debris of interrupted runs.")] = False,
    json_out: JsonOpt = False,
):
    """Compare the catalog with every location: copies missing or incomplete, copies not
    recorded, leftovers of interrupted runs. Exit 0 consistent, 1 not, 3 unreachable."""
    from preserve.storage.check import check as run_check

    repo = _open_repo()
    result = run_check(repo, fix=fix)
    render.report(result, json_out, render.check_report)
    raise typer.Exit(result.exit_code)


@app.command()
def schedule(
    cron: Annotated[bool, typer.Option("--cron", help="Print a crontab line.")] = False,
    systemd: Annotated[bool, typer.Option(
        "--systemd", help="Print a systemd service and timer unit pair.")] = False,
    json_out: JsonOpt = False,
):
    """What the fixity policy makes due, and when; or the lines that run it on a schedule."""
    from preserve.admin import schedule as sched

    repo = _open_repo()
    if cron:
        render.out.print(sched.cron_line(repo.root), markup=False)
        return
    if systemd:
        render.out.print(sched.systemd_units(repo.root), markup=False)
        return
    rows = sched.due_table(repo)
    if json_out:
        render.emit_json(rows)
    else:
        share = repo.policy.audit.sample
        render.schedule(rows, share, sched.coverage_days(share))


def _enqueued(task: str, jobs: list[int], json_out: bool, **extra) -> None:
    """What --queue did: the job ids (none: each was already waiting)."""
    if json_out:
        render.emit_json({"task": task, "jobs": jobs, **extra})
        return
    if not jobs:
        render.out.print(f"nothing enqueued: no {task} job is due that is not already waiting")
        return
    render.out.print(f"enqueued {len(jobs)} {task} job(s): {', '.join(map(str, jobs))}"
                     + "".join(f"\n{k}: {v}" for k, v in extra.items()))
    render.out.print("  'preserve jobs' follows them; 'preserve worker' runs them")


@app.command()
def worker(
    concurrency: Annotated[int, typer.Option(
        "--concurrency", "-c", min=1, help="Jobs this process runs at once.")] = 1,
    queues: Annotated[list[str] | None, typer.Option(
        "--queues", "-q", help="Only these queues (repeatable; default: all): at-<location> "
        "for a local disk this host mounts, object-stores for S3 audits.")] = None,
    heartbeat: Annotated[float, typer.Option(
        min=0.5, help="Seconds between heartbeats; a worker silent for 3 is presumed dead "
        "and its jobs are retried.")] = 10.0,
    once: Annotated[bool, typer.Option(
        "--once", help="Stop when the queues are empty (instead of waiting for work).")] = False,
):
    """Run queued jobs (a PostgreSQL catalog) until stopped: SIGTERM or Ctrl-C lets the
    running jobs finish, then exits."""
    import logging

    from preserve.admin.tasks import run_worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    run_worker(_repo_root(), concurrency=concurrency, queues=queues, heartbeat=heartbeat,
               wait=not once)


@app.command()
def jobs(
    status: Annotated[str | None, typer.Option(
        help="Only jobs queued, running, succeeded, failed or cancelled.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="The newest this many.")] = 200,
    json_out: JsonOpt = False,
):
    """Queued, running, failed and finished jobs, newest first, with their results and
    errors. Exit 1 if any shown failed."""
    from preserve.catalog.queue import list_jobs

    repo = _open_repo()
    rows = list_jobs(repo.catalog, status=status, limit=limit)
    if json_out:
        render.emit_json([r.to_dict() for r in rows])
    else:
        render.job_table(rows)
    raise typer.Exit(EXIT_PROBLEMS if any(r.status == "failed" for r in rows) else EXIT_OK)


storage_app = typer.Typer(no_args_is_help=True, help="Storage locations: add, list, check.")
app.add_typer(storage_app, name="storage")


@storage_app.command("add")
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
):
    """Define a storage location (writes locations/NAME.yaml; never any secret)."""
    from preserve.storage.locations import add_location

    file = add_location(_open_repo(), name, url, endpoint_url=endpoint_url, region=region,
                        addressing_style=addressing_style, storage_class=storage_class,
                        lock_mode=lock_mode, lock_days=lock_days, checksum=checksum,
                        profile=profile, media=media, lifetime_years=lifetime_years)
    render.out.print(f"Location [bold]{render.text(name)}[/] written to {render.text(file)}; "
                     f"'preserve storage check {render.text(name)}' tests it, and listing it "
                     "under replication.locations in the policy puts copies there.")


@storage_app.command("list")
def storage_list(json_out: JsonOpt = False):
    """Every location with reachability, media, age and what it holds."""
    from preserve.storage.locations import location_statuses

    statuses = location_statuses(_open_repo())
    if json_out:
        render.emit_json([s.to_dict() for s in statuses])
    else:
        render.locations(statuses)
    if any(not s.reachable for s in statuses):
        raise typer.Exit(EXIT_UNREACHABLE)


@storage_app.command("check")
def storage_check(name: Annotated[str, typer.Argument()], json_out: JsonOpt = False):
    """Write, read back and delete a probe at a location; say what works."""
    repo = _open_repo()
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


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the command and turn every failure into a message and an exit code."""
    command = typer.main.get_command(app)
    try:
        code = command.main(args=argv, prog_name="preserve", standalone_mode=False)
        if code == EXIT_INTERRUPTED:  # click/typer return Ctrl-C as exit code 130
            _interrupted()
    except PreserveError as e:
        render.failure(e.message, e.hint, getattr(e, "items", None) or
                       getattr(e, "findings", None))
        code = e.exit_code
        if "--json" in (argv if argv is not None else sys.argv[1:]):
            # a script reading stdout gets a document, not nothing (issue 22)
            render.emit_json_error(e.message, e.hint, code)
    except KeyboardInterrupt:
        _interrupted()
        code = EXIT_INTERRUPTED
    except Exception as e:
        # typer vendors its own copy of click, so its exceptions are recognised by shape
        if type(e).__name__ == "Abort" and isinstance(e.__cause__, KeyboardInterrupt | None):
            _interrupted()
            code = EXIT_INTERRUPTED
        elif type(e).__name__ == "Abort" and e.__cause__ is not None:
            # click turns any EOFError into Abort, which would read as Ctrl-C (exit 130)
            _internal_error(e.__cause__)
            code = EXIT_UNREACHABLE
        elif type(e).__name__ == "Exit" and hasattr(e, "exit_code"):
            code = e.exit_code
        elif hasattr(e, "show") and hasattr(e, "exit_code"):  # usage errors
            e.show()
            code = EXIT_USAGE
        else:
            _internal_error(e)
            code = EXIT_UNREACHABLE
    sys.exit(code if isinstance(code, int) else EXIT_OK)


def _internal_error(e: Exception) -> None:
    """A bug: never exit 0, never a bare traceback (unless PRESERVE_DEBUG asks for it). A
    full disk met where no writer named it is still said as what it is."""
    if os.environ.get("PRESERVE_DEBUG"):
        raise e
    from preserve.system.space import FULL

    if isinstance(e, OSError) and e.errno in FULL:
        place = e.filename or "a file preserve was writing"
        render.failure(f"no space left on the device of {place}", "free some space and run "
                       "the command again; what was half-written is removed by the next run")
        return
    said = str(e).lower()
    if type(e).__module__ in ("sqlite3", "psycopg.errors") and "readonly" in said.replace(
            "read-only", "readonly"):  # case 57: the catalog on a read-only mount
        render.failure(f"the catalog cannot be written (it is read-only): {e}; the change "
                       "was not made", "make the catalog file and its folder writable (or "
                       "remount the disk read-write), then run the command again")
        return
    if type(e).__module__ in ("sqlite3", "psycopg.errors") and (
            "disk is full" in said or "no space" in said):  # case 43: the catalog's disk
        render.failure(f"no space left for the catalog: {e}; the change was not made",
                       "free some space on the catalog's disk and run the command again")
        return
    render.failure(f"internal error: {type(e).__name__}: {e}",
                   "this is a bug in preserve; re-run with PRESERVE_DEBUG=1 for details "
                   "and report it")
