"""Preservation Planning's reports: the formats held and their risk, a migration's plan,
what a migration did (files not kept grouped by reason), deferrals, re-identification."""

from __future__ import annotations

from rich.table import Table

from preserve.domain.bag import human_size
from preserve.domain.names import display
from preserve.render.base import LISTED, out, text


def formats_report(rows) -> None:
    table = Table(title=f"{len(rows)} format(s) held", title_justify="left")
    for col, just in (("PUID", "left"), ("format", "left"), ("files", "right"),
                      ("size", "right"), ("risk", "left"), ("action", "left"),
                      ("to do", "right"), ("failed", "right"), ("unproven", "right"),
                      ("deferred", "right"), ("validated", "left"), ("tools here", "left")):
        table.add_column(col, justify=just)
    colours = {"high": "red", "medium": "yellow", "low": "green"}
    for r in rows:
        risk = f"[{colours[r.risk]}]{r.risk}[/]" if r.risk else "[dim]no rule[/]"
        if r.pathway is None:
            works = ""
        else:
            works = ", ".join(f"{t} {v.split('-')[0].split('+')[0]}" if v
                              else f"[red]{t} missing[/]" for t, v in r.tools.items())
        table.add_row(text(r.puid or r.mime or "-"), text(r.name or "(not identified)"),
                      str(r.files), human_size(r.bytes), risk, r.action or "",
                      str(r.pending) if r.action == "migrate" else "",
                      f"[red]{r.failed}[/]" if r.failed else "",
                      f"[yellow]{r.unproven}[/]" if r.unproven else "",
                      str(r.deferred) if r.deferred else "", _validated(r), works)
    out.print(table)


def _validated(r) -> str:
    """A format's verdicts: "12 valid, 1 not checked"; damaged and encrypted in colour."""
    parts = [f"{r.valid} valid"] if r.valid else []
    parts += [f"[red]{r.invalid} invalid[/]"] if r.invalid else []
    parts += [f"[yellow]{r.encrypted} encrypted[/]"] if r.encrypted else []
    parts += [f"[dim]{r.not_checked} not checked[/]"] if r.not_checked else []
    return ", ".join(parts)


def migration_plan(candidates, unchanged: dict) -> None:
    if not candidates:
        out.print("Nothing to migrate: no stored file awaits migration by the format policy.")
        return
    table = Table(title=f"{len(candidates)} file(s) to migrate (run with --apply to do it)",
                  title_justify="left")
    for col in ("AIP", "source", "PUID", "rule", "derivative", "checks", "last try"):
        table.add_column(col)
    for c in candidates[:500]:
        last = unchanged.get((c.aip_id, c.source))
        said = (f"{text(last)}: skipped (--retry)" if last and last.startswith("deferred")
                else f"{last}, nothing changed since: skipped (--retry)" if last else "")
        table.add_row(c.aip_id[:8], text(c.source), text(c.puid or "-"), text(c.rule.name),
                      text(c.derivative), ", ".join(c.rule.checks),
                      f"[yellow]{said}[/]" if said else "")
    out.print(table)
    if len(candidates) > 500:
        out.print(f"... and {len(candidates) - 500} more (--json lists them all)")


def deferral_report(deferred: list[dict]) -> None:
    if not deferred:
        out.print("Nothing deferred: no file of this selection awaits migration.")
        return
    out.print(f"[bold]{len(deferred)}[/] file(s) deferred (recorded as PREMIS events; "
              "'preserve migrate --retry' migrates them):")
    for d in deferred[:LISTED]:
        out.print(f"  {text(d['source'])} (AIP {d['aip'][:8]}, rule {text(d['rule'])})")
    if len(deferred) > LISTED:
        out.print(f"  ... and {len(deferred) - LISTED} more (--json lists them all)")


def migration_report(result) -> None:
    out.print(f"[bold]{len(result.migrated)}[/] of {result.planned} file(s) migrated and "
              f"proven, in {len(result.versions)} new AIP version(s)")
    if result.unchanged:
        out.print(f"{len(result.unchanged)} file(s) not tried again: their last migration "
                  "was not kept and nothing it depends on has changed since (the rule, its "
                  "pathways, the tools' versions); --retry tries them anyway")
    if result.deferred:
        out.print(f"{len(result.deferred)} file(s) deferred by an archivist's decision "
                  "(--plan shows who and why); --retry migrates them")
    for v in result.versions:
        out.print(f"  AIP {v['aip']} v{v['version']}: {v['files_added']} derivative(s) "
                  f"(stored at {', '.join(v['replicas'])})")
    if result.rejected:
        out.print(f"[bold red]{len(result.rejected)} derivative(s) failed[/] (recorded as "
                  "failed migration events; nothing else changed):")
        _by_reason(result.rejected)
    if result.unproven:
        out.print(f"[bold yellow]{len(result.unproven)} derivative(s) could not be proven[/] "
                  "equal to their sources and were not kept (recorded as unproven "
                  "migration events; nothing else changed):")
        _by_reason(result.unproven)
    for p in result.problems:
        out.print(f"[bold red]problem:[/] {text(p)}")


def _by_reason(items: list[dict]) -> None:
    """Files not kept, those with one reason together (their own name in it read as "the
    file"), the commonest reason first: a long list reads as its causes (issue 22)."""
    groups: dict[str, list[dict]] = {}
    for r in items:
        groups.setdefault(r["reason"].replace(display(r["source"]), "the file"), []).append(r)
    for reason, group in sorted(groups.items(), key=lambda g: -len(g[1]))[:LISTED]:
        if len(group) == 1:
            r = group[0]
            out.print(f"  {text(r['source'])} (AIP {r['aip'][:8]}): {text(r['reason'])}")
            continue
        names = ", ".join(f"{text(r['source'])} (AIP {r['aip'][:8]})" for r in group[:5])
        more = f" and {len(group) - 5} more" if len(group) > 5 else ""
        out.print(f"  {len(group)} files: {text(reason)}\n    {names}{more}")


def reidentify_report(result) -> None:
    out.print(f"{result.files} file(s) identified again; {len(result.changed)} changed PUID")
    for c in result.changed[:LISTED]:
        due = " [yellow](now due for migration)[/]" if c.now_due else ""
        out.print(f"  AIP {c.aip[:8]} {text(c.path)}: {c.old_puid or 'none'} -> "
                  f"{c.new_puid or 'none'} ({text(c.new_format or '')}){due}")
    for u in result.unreadable[:LISTED]:
        out.print(f"[bold red]not read:[/] {text(u)}")


def validation_report(result) -> None:
    """`validate-files`: the verdicts, and each file whose verdict changed."""
    said = ", ".join(f"{n} {s}" for s, n in sorted(result.verdicts.items())) or "none"
    out.print(f"{result.files} file(s) of {result.aips} AIP(s) looked at: {said}; "
              f"{result.no_validator} of formats without a validator")
    if result.changed:
        table = Table(title=f"Verdicts that changed ({len(result.changed)})",
                      title_justify="left")
        for col in ("AIP", "file", "before", "now", "findings"):
            table.add_column(col)
        style = {"invalid": "red", "encrypted": "yellow", "valid": "green"}
        for c in result.changed[:LISTED]:
            table.add_row(c.aip[:8], text(c.path), c.before or "[dim]never validated[/]",
                          f"[{style.get(c.after, 'dim')}]{c.after}[/]",
                          text("; ".join(c.findings)))
        out.print(table)
        if len(result.changed) > LISTED:
            out.print(f"  ... and {len(result.changed) - LISTED} more (--json lists them all)")
    for u in result.unreadable[:LISTED]:
        out.print(f"[bold red]not read:[/] {text(u)}")
