"""The reports of what outlives the catalog: `log verify`, `log checkpoint` and `catalog
rebuild`."""

from __future__ import annotations

from preserve.render.base import err, out, text


def log_verify(report) -> None:
    out.print(f"event log: {report.size} entries, root {report.root[:16]}…, "
              f"{report.checkpoints} signed checkpoint(s); copies checked at "
              f"{', '.join(report.locations) or 'no location'}; {report.documents} logs/ "
              "document(s) checked against their digests")
    if report.unprotected:
        out.print(f"  {report.unprotected} logs/ document(s) of events logged before the log "
                  "named documents: their events are signed, the documents are not")
    for name, why in sorted(report.unreachable.items()):
        out.print(f"  [yellow]{text(name)}: not checked[/] ({text(why)})")
    for p in report.problems:
        event = f" AIP {text(p.aip)} event {text(p.event)}" if p.event else ""
        place = f" (entry {p.position})" if p.position else ""
        out.print(f"  [bold red]{p.kind}[/] at {text(p.where)}:{event}{place}: {text(p.detail)}")
    _verdict(report, "The history is whole: every copy matches the signed log.",
             f"{len(report.problems)} problem(s) in the history.",
             "No problem found where the log could be read; some locations could not be "
             "reached.")


def log_checkpoint(note: str) -> None:
    """The note alone on stdout (`> kept.txt` keeps exactly it); the advice on stderr."""
    out.print(note, end="", markup=False, highlight=False)
    err.print("Keep this text outside the repository (print it, send it): "
              "'preserve log verify --against FILE' proves the history has not been "
              "rewritten since.", markup=False)


def rebuild_report(result) -> None:
    if result.aside:
        out.print(f"the catalog that was there is kept aside: {text(result.aside)}")
    out.print(f"rebuilt from {', '.join(result.locations) or 'no location'}: {result.aips} "
              f"AIP(s) ({result.resumed} already in from an interrupted run), "
              f"{result.versions} version(s), {result.files} file(s), {result.replicas} "
              f"replica(s), {result.events} event(s); the event log: {result.log_size} "
              f"signed entries, root {result.log_root[:16] or '-'}")
    for name, why in sorted(result.unreachable.items()):
        out.print(f"  [yellow]{text(name)}: not read[/] ({text(why)})")
    for p in result.problems:
        where = f" AIP {text(p['aip'])}" if p.get("aip") else ""
        out.print(f"  [bold red]{p['kind']}[/]{where}: {text(p['detail'])}")
    _verdict(result, "The catalog is rebuilt from storage.",
             f"Rebuilt, with {len(result.problems)} problem(s) named above.",
             "Rebuilt from the locations that could be reached.")


def _verdict(result, ok: str, problems: str, unreachable: str) -> None:
    """The last line of a report whose status is a Verdict's."""
    out.print({"ok": f"[green]{ok}[/]", "problems": f"[bold red]{problems}[/]",
               "unreachable": f"[yellow]{unreachable}[/]"}[result.status])
