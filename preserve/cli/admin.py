"""Administration commands: schedule, worker, jobs, drill."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from preserve import render
from preserve.cli.app import JsonOpt, open_repo, repo_root, show_progress
from preserve.errors import EXIT_OK, EXIT_PROBLEMS, BadArgument


def schedule(
    cron: Annotated[bool, typer.Option("--cron", help="Print a crontab line.")] = False,
    systemd: Annotated[bool, typer.Option(
        "--systemd", help="Print a systemd service and timer unit pair.")] = False,
    json_out: JsonOpt = False,
):
    """What the fixity policy makes due, and when; or the lines that run it on a schedule."""
    from preserve.admin import schedule as sched

    repo = open_repo()
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
    run_worker(repo_root(), concurrency=concurrency, queues=queues, heartbeat=heartbeat,
               wait=not once)


def jobs(
    status: Annotated[str | None, typer.Option(
        help="Only jobs queued, running, succeeded, failed or cancelled.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="The newest this many.")] = 200,
    json_out: JsonOpt = False,
):
    """Queued, running, failed and finished jobs, newest first, with their results and
    errors. Exit 1 if any shown failed."""
    from preserve.catalog.queue import list_jobs

    repo = open_repo()
    rows = list_jobs(repo.catalog, status=status, limit=limit)
    if json_out:
        render.emit_json([r.to_dict() for r in rows])
    else:
        render.job_table(rows)
    raise typer.Exit(EXIT_PROBLEMS if any(r.status == "failed" for r in rows) else EXIT_OK)


def drill(
    sample: Annotated[int, typer.Option(
        "--sample", min=1, help="How many version copies to restore, chosen at random.")] = 3,
    location: Annotated[str | None, typer.Option(
        help="Only copies held at this location.")] = None,
    json_out: JsonOpt = False,
):
    """A restore drill: export randomly chosen AIP version copies to a scratch folder (every
    byte checked against the record), validate each bag, record the result as a PREMIS
    event. Exit 0 every copy restored, 1 one is not restorable, 3 a location unreachable."""
    from preserve.admin.drill import drill as run_drill

    with render.progress_bar(show_progress()) as progress:
        result = run_drill(open_repo(), sample, location=location, progress=progress)
    render.report(result, json_out, render.drill_report)
    raise typer.Exit(result.exit_code)


def report(
    html_file: Annotated[Path | None, typer.Option(
        "--html", help="Write the report as one self-contained HTML file.")] = None,
    pdf_file: Annotated[Path | None, typer.Option(
        "--pdf", help="Write it as a PDF (printed by headless Chromium).")] = None,
    json_out: JsonOpt = False,
):
    """The repository's health: holdings and growth, copies and their verification, media,
    formats by risk, drills, the event log, and the NDSA Levels v2.0 computed from that
    evidence. The same catalog gives the same report. Exit 0; 1 when the last audit found
    problems or a location's medium is past its service life."""
    from preserve.admin.report import build
    from preserve.render import health as show

    for target in (html_file, pdf_file):
        if target is not None and not target.parent.is_dir():
            raise BadArgument(f"{target}: the folder {target.parent} does not exist",
                              hint="give a file in an existing folder")
    facts = build(open_repo())
    if html_file or pdf_file:
        document = show.html(facts)
        if html_file:
            partial = html_file.with_name(f".{html_file.name}.partial")
            try:
                partial.write_text(document, encoding="utf-8")
                partial.replace(html_file)
            except OSError as e:
                partial.unlink(missing_ok=True)
                raise BadArgument(f"{html_file} cannot be written: {e.strerror or e}",
                                  hint="give a file in a folder you may write to") from None
        if pdf_file:
            show.pdf(document, pdf_file)
        written = ", ".join(str(p) for p in (html_file, pdf_file) if p)
        if json_out:
            render.emit_json(facts)
        else:
            render.out.print(f"Report written to {render.text(written)}")
    elif json_out:
        render.emit_json(facts)
    else:
        show.terminal(facts)
    raise typer.Exit(EXIT_PROBLEMS if _alarming(facts) else EXIT_OK)


def _alarming(facts: dict) -> bool:
    """What a monitor must hear of: damage the last audit found, a medium past its life."""
    if facts["integrity"]["open_problems"]:
        return True
    return any(loc["aip_versions"] and loc["age_years"] is not None
               and loc["expected_lifetime_years"]
               and loc["age_years"] >= loc["expected_lifetime_years"]
               for loc in facts["copies"]["locations"])
