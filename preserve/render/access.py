"""Access's reports: search hits, and what `extract` kept."""

from __future__ import annotations

import re

from rich.table import Table

from preserve.render.base import LISTED, out, text


def search_report(query: str, hits: list) -> None:
    """`search`: a hit a row, best first, the matching words of the snippet in bold."""
    if not hits:
        out.print(f"Nothing found for {text(query)!s}.")
        return
    table = Table(title=f"{len(hits)} hit(s) for {text(query)}", title_justify="left")
    for col in ("#", "AIP", "collection", "file", "page", "found in"):
        table.add_column(col, overflow="fold")
    for n, h in enumerate(hits, 1):
        where = {"aip": "description", "file": "name, format"}.get(h.kind, h.kind)
        table.add_row(str(n), h.aip[:8], text(h.collection), text(h.path[5:] or "-"),
                      str(h.page or ""), where)
        shown = (_marked(h.snippet) if not h.closed else "[yellow]closed by rights[/]"
                 + (f" (opens on {h.opens_on})" if h.opens_on else ""))
        table.add_row("", "", "", shown, "", "", end_section=True)
    out.print(table)


def _marked(snippet: str) -> str:
    """The snippet, escaped for rich, its [matches] in bold."""
    parts = re.split(r"\[([^\[\]]+)\]", snippet)
    return "".join(f"[bold yellow]{text(p)}[/]" if i % 2 else f"[dim]{text(p)}[/]"
                   for i, p in enumerate(parts))


def extract_report(result) -> None:
    """`extract`: files, pages, OCR pages, the versions written, what failed."""
    out.print(f"{len(result.extracted)} of {result.planned} file(s) gave their text: "
              f"{result.pages} page(s), {result.ocr_pages} read by OCR; "
              f"{len(result.versions)} AIP version(s) written")
    for v in result.versions[:LISTED]:
        out.print(f"  AIP {v['aip']} v{v['version']}: text of {v['files']} file(s)")
    if result.failed:
        table = Table(title=f"No text from {len(result.failed)} file(s)", title_justify="left")
        for col in ("AIP", "file", "why"):
            table.add_column(col, overflow="fold")
        for f in result.failed[:LISTED]:
            table.add_row(f["aip"][:8], text(f["path"]), text(f["error"]))
        out.print(table)
    for p in result.problems[:LISTED]:
        out.print(f"[bold red]problem:[/] {text(p)}")


def rights_report(aip_id: str, decided) -> None:
    """`rights explain`: open or closed, the date it opens, the rules in order."""
    state = "[bold green]open[/]" if decided.open else "[bold red]closed[/]"
    out.print(f"AIP {aip_id} is {state}" + (f"; it opens on {decided.opens_on}"
                                             if decided.opens_on else ""))
    for n, step in enumerate(decided.chain, 1):
        out.print(f"  {n}. {text(step)}")


def access_report(result) -> None:
    """`access build`: the copies made, those already current, what failed."""
    out.print(f"{len(result.made)} access cop(ies) made, {result.current} already current"
              + (f", {len(result.removed)} removed (their files left the AIP)"
                 if result.removed else ""))
    for m in result.made[:LISTED]:
        pages = f", {m['pages']} page(s) for the viewer" if m["pages"] else ""
        out.print(f"  AIP {m['aip'][:8]} {text(m['path'])}: {m['kind']} as {m['choice']} "
                  f"({text(', '.join(m['files']))}{pages})")
    for f in result.failed[:LISTED]:
        out.print(f"[bold red]not made:[/] AIP {f['aip'][:8]} {text(f['path'])}: "
                  f"{text(f['error'])}")
