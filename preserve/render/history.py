"""The event log's reports: `log verify` and `log checkpoint`."""

from __future__ import annotations

from preserve.render.base import out, text


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
    if report.status == "ok":
        out.print("[green]The history is whole: every copy matches the signed log.[/]")
    elif report.problems:
        out.print(f"[bold red]{len(report.problems)} problem(s) in the history.[/]")
    else:
        out.print("[yellow]No problem found where the log could be read; some locations "
                  "could not be reached.[/]")


def log_checkpoint(note: str) -> None:
    out.print(note, end="", markup=False, highlight=False)
    out.print("Keep this text outside the repository (print it, send it): "
              "'preserve log verify --against FILE' proves the history has not been "
              "rewritten since.", markup=False)
