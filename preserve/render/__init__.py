"""All terminal output: rich tables and progress for people, JSON for machines.

Reports go to stdout; progress bars and error messages go to stderr, so
`--json` output can be piped while a person still sees what is happening. What every
report shares is base.py; Preservation Planning's reports are planning.py; the reports
of ingest, storage, data management and administration are here. Commands call them as
`render.<name>`, wherever each lives.
"""

from __future__ import annotations

import os
from collections import Counter
from itertools import islice

from rich.table import Table

from preserve.domain.bag import human_size
from preserve.render.access import (
    access_report,
    extract_report,
    rights_report,
    search_report,
)
from preserve.render.base import (
    FINDINGS_LISTED,
    LISTED,
    emit_json,
    emit_json_error,
    emit_json_stream,
    err,
    failure,
    out,
    progress_bar,
    report,
    text,
)
from preserve.render.history import log_checkpoint, log_verify, rebuild_report
from preserve.render.planning import (
    deferral_report,
    formats_report,
    migration_plan,
    migration_report,
    reidentify_report,
    validation_report,
)

# what commands reach as render.<name> from base.py and planning.py
__all__ = [
    "access_report",
    "extract_report",
    "rights_report",
    "search_report",
    "FINDINGS_LISTED",
    "LISTED",
    "log_checkpoint",
    "log_verify",
    "rebuild_report",
    "deferral_report",
    "emit_json",
    "emit_json_error",
    "emit_json_stream",
    "err",
    "failure",
    "formats_report",
    "migration_plan",
    "migration_report",
    "out",
    "progress_bar",
    "reidentify_report",
    "validation_report",
    "report",
    "text",
]


def ingest_summary(result) -> None:
    secs = result.seconds
    rate = result.bytes / secs if secs else 0
    out.print(f"[bold green]Ingested[/] AIP [bold]{result.aip_id}[/]")
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_row("collection", text(result.collection))
    table.add_row("source", f"{text(result.source)} ({result.source_kind})")
    table.add_row("files", f"{result.files}" + (f" and {result.empty_dirs} empty folder(s)"
                                                if result.empty_dirs else ""))
    table.add_row("bytes", f"{result.bytes} ({human_size(result.bytes)})")
    table.add_row("time", f"{secs:.2f} s, {human_size(int(rate))}/s, "
                          f"{result.files / secs if secs else 0:.0f} files/s")
    table.add_row("stored at", ", ".join(result.replicas) or result.location)
    table.add_row("identified", f"{result.files - result.unidentified - result.extension_only} "
                  f"by signature, {result.extension_only} by extension only, "
                  f"{result.unidentified} not identified")
    _checks_rows(table, result.checks)
    if result.text:
        table.add_row("full text", text(result.text.get("error")) if "error" in result.text else
                      f"{len(result.text['extracted'])} file(s), {result.text['pages']} page(s) "
                      f"({result.text['ocr_pages']} by OCR), {len(result.text['failed'])} "
                      "without text")
    out.print(table)
    out.print(formats_table(result.formats, title="Formats found"))
    _flagged(result.checks)
    if result.problems():
        out.print(f"[bold red]{len(result.problems())} damaged or infected file(s) stored[/], "
                  "marked as such (policy 'strict' refuses such a SIP instead)")
    if result.skipped:
        out.print(f"[yellow]Left out by policy ({len(result.skipped)}):[/]")
        for s in result.skipped:
            out.print(f"  {text(s)}")
    if result.duplicate_of:
        out.print(f"[yellow]The same content is held already[/] as AIP "
                  f"{', '.join(result.duplicate_of)}: this is a second AIP of it "
                  "(--refuse-duplicate stores nothing in that case)")
    if result.warnings:
        out.print(f"[yellow]Warnings, recorded in the AIP's PREMIS ({len(result.warnings)}):[/]")
        for w in result.warnings[:LISTED]:
            out.print(f"  {text(w)}")
        if len(result.warnings) > LISTED:
            out.print(f"  ... and {len(result.warnings) - LISTED} more (--json lists them all)")


def _checks_rows(table: Table, checks: dict) -> None:
    """The validation and virus-check lines of an ingest summary (issue 26)."""
    validation = dict(checks.get("validation") or {})
    if validation:
        policy = validation.pop("policy", "on")
        none = validation.pop("no validator", 0)
        if policy == "off":
            table.add_row("validated", "[yellow]no: validation is off in the policy[/]")
        else:
            said = ", ".join(f"{n} {status}" for status, n in sorted(validation.items()))
            table.add_row("validated", (said or "no file") + f"; {none} of formats without a "
                          "validator")
    virus = checks.get("virus")
    if virus is not None:
        if not virus["done"]:
            table.add_row("virus check", f"[yellow]not done[/]: {text(virus['why_not'])}")
        else:
            table.add_row("virus check", f"{virus['files']} file(s) scanned, "
                          f"{len(virus['infected'])} infected, {len(virus['not_scanned'])} "
                          f"not scanned whole ({text(virus['engine'])}; "
                          f"{text(virus['database'])})")


def _flagged(checks: dict) -> None:
    flagged = checks.get("flagged") or []
    if not flagged:
        return
    table = Table(title=f"Files marked at ingest ({len(flagged)})", title_justify="left")
    table.add_column("file")
    table.add_column("verdict")
    table.add_column("findings")
    style = {"invalid": "red", "infected": "bold red", "encrypted": "yellow"}
    for f in flagged[:LISTED]:
        s = style.get(f["status"], "dim")
        table.add_row(text(f["path"]), f"[{s}]{f['status']}[/]", text("; ".join(f["findings"])))
    out.print(table)
    if len(flagged) > LISTED:
        out.print(f"  ... and {len(flagged) - LISTED} more (--json lists them all)")


def _checked(verdicts: dict) -> str:
    """A file's verdicts for the files table: "valid", "invalid: <finding>", "infected"."""
    style = {"valid": "green", "invalid": "red", "infected": "bold red", "encrypted": "yellow"}
    parts = []
    for check in ("validation", "virus check"):
        if check in verdicts:
            status, detail = verdicts[check]
            shown = text(status) if status == "valid" else f"{text(status)}: {text(detail or '')}"
            parts.append(f"[{style.get(status, 'dim')}]{shown[:120]}[/]")
    return "; ".join(parts) or "[dim]not checked[/]"


def formats_table(rows, title: str) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("PUID")
    table.add_column("format")
    table.add_column("files", justify="right")
    for row in rows:
        puid, fmt, count = row[0], row[1], row[2]
        table.add_row(text(puid or "-"), text(fmt or "(not identified)"), str(count))
    return table


def aip_list(aips) -> None:
    table = Table(title=f"{len(aips)} AIP(s)", title_justify="left")
    for col, just in (("id", "left"), ("collection", "left"), ("title", "left"),
                      ("files", "right"), ("size", "right"), ("created", "left"),
                      ("locations", "left")):
        table.add_column(col, justify=just)
    for a in aips:  # untitled AIPs are told apart by the name of what was ingested
        title = a.title or (f"[dim]({text(os.path.basename(a.source))})[/]" if a.source else "")
        table.add_row(a.id, text(a.collection), title if not a.title else text(a.title),
                      str(a.files), human_size(a.bytes), a.created, ", ".join(a.locations))
    out.print(table)


def aip_show(summary, description, files, formats, events, versions, derivations, *,
             max_files: int, all_events: bool = False, unread: str | None = None,
             checks: dict | None = None) -> None:
    """`checks`: {bag path: {check type: (status, detail)}} (format validation, virus)."""
    checks = checks or {}
    out.print(f"[bold]AIP {summary.id}[/] (version {summary.version})")
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_row("collection", text(summary.collection))
    table.add_row("title", text(summary.title or ""))
    for label, values in description.items():
        if label != "Title":
            table.add_row(label.lower(), text("; ".join(values)))
    if unread:
        table.add_row("description", f"[red]not read[/]: {text(unread)}")
    table.add_row("created", summary.created)
    table.add_row("source", text(summary.source or ""))
    table.add_row("files", f"{summary.files} ({human_size(summary.bytes)})")
    table.add_row("replicas", ", ".join(summary.locations))
    table.add_row("package digest", f"sha256 {summary.package_digest}")
    verdicts = Counter(c["validation"][0] for c in checks.values() if "validation" in c)
    table.add_row("validated", ", ".join(f"{n} {s}" for s, n in sorted(verdicts.items()))
                  + f"; {summary.files - sum(verdicts.values())} not checked")
    out.print(table)
    vt = Table(title="Versions (OCFL)", title_justify="left")
    for col in ("version", "created", "agent", "message", "files added"):
        vt.add_column(col, justify="right" if col in ("version", "files added") else "left")
    for v in versions:
        vt.add_row(f"v{v['version']}", v["created"], text(v["user"]), text(v["message"]),
                   f"{v['files_added']} ({human_size(v['bytes_added'])})")
    out.print(vt)
    if derivations:
        dt = Table(title="Migrations (originals kept)", title_justify="left")
        for col in ("version", "source", "derivative", "rule"):
            dt.add_column(col)
        for version, source, derivative, rule in derivations[:max_files]:
            dt.add_row(f"v{version}", text(source), text(derivative), text(rule))
        out.print(dt)
    out.print(formats_table([(p, f, n) for p, f, n, _ in formats], "Formats"))
    ft = Table(title=f"Files ({len(files)}" + (f", first {max_files} shown" if
                                                len(files) > max_files else "") + ")",
               title_justify="left")
    for col in ("path", "size", "PUID", "format", "MIME", "checked", "sha256"):
        ft.add_column(col, justify="right" if col == "size" else "left")
    for f in files[:max_files]:
        ft.add_row(text(f.path), str(f.size), text(f.puid or "-"),
                   text(" ".join(x for x in (f.format, f.format_version) if x) or "-"),
                   text(f.mime or ""), _checked(checks.get(f.path, {})),
                   f.digests.get("sha256", "")[:16] + "…")
    out.print(ft)
    if all_events:
        et = Table(title=f"Events ({len(events)})", title_justify="left")
        for col in ("date", "type", "outcome", "detail"):
            et.add_column(col)
        for e in events:
            et.add_row(e.datetime, e.type, e.outcome,
                       text(e.detail + (f" — {e.outcome_detail}" if e.outcome_detail else "")))
        out.print(et)
        return
    kinds: dict[str, list] = {}
    for e in events:
        kinds.setdefault(e.type, []).append(e)
    et = Table(title=f"Events ({len(events)}; the latest of each kind: --events lists all)",
               title_justify="left")
    for col in ("type", "count", "latest", "outcome", "detail"):
        et.add_column(col, justify="right" if col == "count" else "left")
    for kind, group in kinds.items():
        last = group[-1]
        et.add_row(kind, str(len(group)), last.datetime, last.outcome,
                   text(last.detail + (f" — {last.outcome_detail}"
                                       if last.outcome_detail else "")))
    out.print(et)


def validation(report) -> None:
    status = "[bold green]valid[/]" if report.valid else "[bold red]INVALID[/]"
    out.print(f"{text(report.bag)}: {status} (BagIt {report.version or '?'}, "
              f"{report.payload_files} payload files, {human_size(report.payload_bytes)}, "
              f"{report.files_hashed} files hashed, algorithms: "
              f"{', '.join(report.algorithms) or '-'})")
    findings = report.findings
    if not len(findings):
        return
    count = findings.count
    table = Table(title=f"{count['error']} error(s), {count['warning']} warning(s)",
                  title_justify="left")
    for col in ("", "code", "where", "finding"):
        table.add_column(col)
    for f in islice(findings, FINDINGS_LISTED):
        mark = "[red]error[/]" if f.severity == "error" else "[yellow]warning[/]"
        table.add_row(mark, f.code, text(f.location()), text(f.message))
    out.print(table)
    if len(findings) > FINDINGS_LISTED:
        codes = ", ".join(f"{code} ×{n}" for code, n in sorted(findings.by_code.items()))
        out.print(f"… and {len(findings) - FINDINGS_LISTED} more finding(s) not listed "
                  f"(all of them: {codes}); --json lists every one")


def validation_json(report) -> None:
    emit_json_stream(report.summary(), "findings", (f.to_dict() for f in report.findings))


def identifications(rows) -> None:
    table = Table(title=f"{len(rows)} file(s)", title_justify="left")
    for col in ("path", "PUID", "format", "MIME", "basis / warning"):
        table.add_column(col)
    for path, ident in rows:
        fmt = " ".join(x for x in (ident.format, ident.version) if x)
        note = "; ".join(x for x in (ident.basis, ident.warning, ident.error) if x)
        table.add_row(text(path), text(ident.puid or "-"), text(fmt or "-"),
                      text(ident.mime or ""), text(note))
    out.print(table)


def replication(result) -> None:
    for aip, version, location in result.copied:
        out.print(f"[green]copied[/] AIP {aip} v{version} to {text(location)} (verified)")
    for aip, version, location, reason in result.failed:
        out.print(f"[red]failed[/] AIP {aip} v{version} to {text(location)}: {text(reason)}")
    for location in result.unreachable:
        out.print(f"[red]unreachable[/] location {text(location)}: nothing was copied there")
    status = "[bold green]all copies made[/]" if result.complete else "[bold red]incomplete[/]"
    out.print(f"{status}: {len(result.copied)} copied, {result.already} already in place")


def storage_migration(result) -> None:
    """`storage migrate`: the plan, or what each AIP's copy became."""
    head = f"{text(result.source)} -> {text(result.target)}"
    if result.unreachable:
        out.print(f"[red]unreachable[/] ({head}): {text(result.unreachable)}; nothing was done")
        return
    total = sum(m.bytes for m in result.moves)
    if result.plan_only:
        out.print(f"[bold]Plan[/] {head}: {len(result.moves)} AIP(s), "
                  f"{sum(len(m.versions) for m in result.moves)} version copies, "
                  f"{human_size(total)}; {human_size(result.bytes_to_copy)} to copy "
                  f"({sum(bool(m.to_copy) for m in result.moves)} AIP(s) not yet at "
                  f"{text(result.target)}), then every byte at {text(result.target)} re-read")
        if result.estimate_seconds is not None:
            out.print(f"About {result.estimate_seconds:,.0f} s at the {human_size(result.read_rate)}"
                      f"/s {text(result.source)} was read at just now (a target that writes "
                      "more slowly takes longer)")
        if result.retire:
            out.print(f"Then each copy at {text(result.source)} is deleted once its copy at "
                      f"{text(result.target)} is verified, and {text(result.source)} retired.")
        return
    for m in result.moves:
        if m.problem:
            colour = "yellow" if m.unreachable else "red"
            out.print(f"[{colour}]kept[/] AIP {m.aip} at {text(result.source)}: {text(m.problem)}")
    done = sum(m.verified for m in result.moves)
    out.print(f"{head}: {sum(len(m.copied) for m in result.moves)} version copies made, "
              f"{done} of {len(result.moves)} AIP(s) verified at {text(result.target)}"
              + (f", {sum(m.retired for m in result.moves)} removed from {text(result.source)}"
                 if result.retire else ""))
    for note in result.notes:
        out.print(f"[yellow]{text(note)}[/]")
    if result.location_retired:
        out.print(f"[bold green]{text(result.source)} is empty and retired[/] (its file keeps "
                  "its history); it can be disconnected")
    elif result.exit_code == 0:
        out.print("[bold green]every copy is at the target, verified[/]")


def locations(statuses) -> None:
    table = Table(title=f"{len(statuses)} storage location(s)", title_justify="left")
    for col in ("name", "kind", "where", "reachable", "media", "age", "AIP versions", "size",
                "in policy"):
        table.add_column(col)
    for s in statuses:
        age = f"{s.age_years:g} y" if s.age_years is not None else "-"
        if s.expected_lifetime_years:
            age += f" of {s.expected_lifetime_years:g}"
        reach = ("[green]yes[/]" if s.reachable else f"[red]NO[/] {text(s.problem)}")
        if s.retired:
            reach = f"[dim]retired {s.retired} (copies moved to {text(s.retired_to)})[/]"
        table.add_row(text(s.name), s.kind, text(s.where), reach,
                      text(s.media or "-"), age, str(s.aip_versions), human_size(s.bytes),
                      "yes" if s.in_policy else "no")
    out.print(table)
    for s in statuses:
        for warning in s.warnings:
            out.print(f"  [yellow]{text(s.name)}[/]: {text(warning)}")


def audit_report(result) -> None:
    colour = {"ok": "green", "damaged": "red", "unreachable": "yellow", "stale": "yellow"}[
        result.status]
    out.print(f"[bold {colour}]{result.status.upper()}[/]: {result.kind} audit of "
              f"{result.replicas} version cop(ies) (an AIP version at a location), "
              f"{result.files} file(s), "
              f"{human_size(result.bytes_read)} read, {len(result.problems)} problem(s) "
              f"(run {result.run_id})")
    for name, warnings in sorted(result.media_warnings.items()):
        for warning in warnings:
            out.print(f"  [yellow]{text(name)}[/]: {text(warning)}")
    if result.resumed_from:
        out.print(f"Continued the unfinished audit started {result.resumed_from}; its findings "
                  "are included.")
    if result.stopped:
        out.print(f"[yellow]Stopped by the {result.stopped}[/] before every selected file was "
                  "verified; the next run with the same options continues from there.")
    if not result.problems:
        return
    table = Table(title="Problems", title_justify="left")
    for col in ("kind", "AIP", "location", "path", "detail"):
        table.add_column(col)
    for p in result.problems:
        table.add_row(f"[red]{p.kind}[/]", f"{p.aip} v{p.version}", text(p.location),
                      text(p.path or "-"), text(p.detail))
    out.print(table)


def repair_report(result) -> None:
    if not result.repairs and not result.untouched:
        out.print("[bold green]OK[/]: every replica matches the record; nothing to repair")
    for r in result.repairs:
        colour = {"repaired": "green", "no good copy": "bold red", "failed": "red"}[r.outcome]
        out.print(f"[{colour}]{r.outcome.upper()}[/] {r.kind} {text(r.path)} of AIP {r.aip} "
                  f"v{r.version} at {text(r.location)}: {text(r.detail)}")
    for p in result.untouched:
        out.print(f"[yellow]NOT REPAIRED[/] {p.kind} {text(p.path or '-')} of AIP {p.aip} at "
                  f"{text(p.location)}: {text(p.detail)}")


def check_report(result) -> None:
    if not result.findings:
        out.print(f"[bold green]consistent[/]: {result.replicas} recorded cop(ies) of "
                  f"{result.aips} AIP(s) are where the catalog says, whole; nothing else is "
                  "at the locations, and no interrupted run left anything")
        return
    table = Table(title=f"{len(result.findings)} finding(s): {result.status}",
                  title_justify="left")
    for col in ("kind", "where", "what", "detail", "fixed"):
        table.add_column(col)
    for f in result.findings[:LISTED]:
        fixed = "[green]yes[/]" if f.fixed else ("--fix" if f.fixable else "no")
        table.add_row(f.kind, text(f.where), text(f.what), text(f.detail), fixed)
    out.print(table)
    if len(result.findings) > LISTED:
        out.print(f"… and {len(result.findings) - LISTED} more (--json lists them all)")


def schedule(rows, sample: float | None, coverage: int | None) -> None:
    copies = {(r["aip"], r["location"]) for r in rows}
    places = {r["location"] for r in rows}
    due = {(r["aip"], r["location"]) for r in rows if r["due_now"]}
    never = {(r["aip"], r["location"]) for r in rows if not r["last_audit"]}
    damaged = {(r["aip"], r["location"]) for r in rows if r["damaged"]}
    out.print(f"[bold]{len(copies)} AIP cop(ies)[/] ({len({a for a, _ in copies})} AIP(s) at "
              f"{len(places)} location(s)): [bold]{len(due)} due now[/], {len(never)} never "
              f"audited, " + (f"[red]{len(damaged)} with damage found[/]" if damaged
                              else "none with damage found"))
    table = Table(title=f"{len(rows)} version cop(ies): an AIP version at a location",
                  title_justify="left")
    for col in ("AIP", "collection", "location", "kind", "every", "files",
                "least recently verified", "next due"):
        table.add_column(col)
    for r in rows:
        due = "[bold]now[/]" if r["due_now"] else r["next_due"]
        last = "[red]damage found[/]" if r["damaged"] else (r["last_audit"] or "never")
        table.add_row(f"{r['aip']} v{r['version']}", text(r["collection"]), text(r["location"]),
                      r["kind"], f"{r['interval_days']:g} d", str(r["files"]), last, due)
    out.print(table)
    if sample is not None:
        out.print(f"Sampling: each run also verifies {sample:.4g} of all files, least recently "
                  f"verified first; with nightly runs every file is verified within "
                  f"{coverage} days.")


def _job_outcome(job) -> str:
    """One line of what a job did: its error, or the gist of its result."""
    if job.error:
        return f"[red]{text(job.error)}[/]"
    result = job.result or {}
    if job.task == "audit" and result:
        problems = result.get("problems") or []
        return f"{result.get('status')}: {result.get('files', 0)} file(s), " \
               f"{len(problems)} problem(s)"
    return text(result.get("status", "")) if isinstance(result, dict) else ""


def job_table(jobs) -> None:
    colour = {"queued": "cyan", "running": "yellow", "succeeded": "green", "failed": "red",
              "cancelled": "dim"}
    table = Table(title=f"{len(jobs)} job(s), newest first", title_justify="left")
    for col in ("id", "task", "status", "tries", "AIP", "where", "worker", "finished",
                "outcome"):
        table.add_column(col, no_wrap=col in ("id", "task", "status", "tries"))
    for j in jobs:
        table.add_row(str(j.id), j.task, f"[{colour[j.status]}]{j.status}[/]", str(j.attempts),
                      text((j.aip or "-")[:13]), text(j.args.get("location") or j.queue),
                      text(j.worker or "-"), j.finished or "-", _job_outcome(j))
    out.print(table)


def catalog_diff(result) -> None:
    out.print(f"{text(result.here)} compared with {text(result.there)}"
              + (f" (leaving out {', '.join(result.ignored)})" if result.ignored else ""))
    for t in result.tables:
        if t.same:
            out.print(f"  {t.table}: the same ({t.rows[0]} row(s))")
            continue
        out.print(f"  [bold red]{t.table}[/]: {t.rows[0]} row(s) here, {t.rows[1]} there; "
                  f"{t.only_here} only here, {t.only_there} only there, {t.changed} changed")
        for example in t.examples:
            out.print(f"    {text(example)}")
    out.print("[green]The catalogs hold the same rows.[/]" if result.same else
              "[bold red]The catalogs differ.[/]")


def drill_report(result) -> None:
    if not result.drills:
        out.print("Nothing to drill: no AIP version copy is recorded (at that location).")
        return
    failed = [d for d in result.drills if not d.restored]
    for d in result.drills:
        mark = "[green]restored[/]" if d.restored else "[bold red]NOT RESTORABLE[/]"
        said = f"{d.files} file(s), {human_size(d.bytes)}" if d.restored else text(d.problem)
        out.print(f"  AIP {d.aip} v{d.version} from {text(d.location)}: {mark} ({said})")
    out.print(f"{len(result.drills) - len(failed)} of {len(result.drills)} version cop(ies) "
              f"restored and valid (chosen at random among {result.copies}); each result "
              "recorded as a PREMIS validation event")
