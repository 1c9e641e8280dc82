"""The health report (admin/report.py) for people: rich tables in the terminal, one
self-contained HTML file (CSS and SVG charts inline, no script, no request leaves it,
readable on a phone, printable), and a PDF printed from that HTML by Debian's headless
Chromium. All three show the same facts as `report --json`, in the same order."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from rich.table import Table

from preserve.admin.ndsa import AREAS, LEVELS, level_reached
from preserve.domain.bag import human_size
from preserve.errors import ConfigError, ToolFailure
from preserve.render.base import out, text

MARK = {"met": "[green]met[/]", "partly": "[yellow]partly[/]", "not met": "[red]not met[/]",
        "outside": "[dim]outside[/]"}


def terminal(facts: dict) -> None:
    h, c, i, f = facts["holdings"], facts["copies"], facts["integrity"], facts["formats"]
    out.print(f"[bold]Repository health[/] as of {facts['as_of'] or 'no record yet'}: "
              f"{h['aips']:,} AIPs in {len(h['collections'])} collection(s), "
              f"{h['versions']:,} versions, {h['files']:,} files, {human_size(h['bytes'])}")
    table = Table(title="NDSA Levels of Digital Preservation v2.0, from the evidence",
                  title_justify="left")
    table.add_column("area")
    for level, name in LEVELS.items():
        table.add_column(f"{level} {name}")
    table.add_column("level")
    for area in AREAS:
        cells = [next(x for x in facts["ndsa"] if x["area"] == area and x["level"] == level)
                 for level in LEVELS]
        table.add_row(area, *(MARK[x["status"]] for x in cells),
                      str(level_reached(facts["ndsa"], area)))
    out.print(table)
    for cell in facts["ndsa"]:
        for a in cell["activities"]:
            if a["status"] in ("partly", "not met") and a["missing"]:
                out.print(f"  {cell['area']} L{cell['level']}: {text(a['activity'])} — "
                          f"{text(a['evidence'])}; [yellow]to meet it:[/] {text(a['missing'])}")

    copies = Table(title="Copies", title_justify="left")
    for col in ("location", "medium", "site", "age", "AIP versions", "size", "sole copies",
                "below policy", "oldest verified"):
        copies.add_column(col)
    for loc in c["locations"]:
        age = "retired" if loc["retired"] else (
            f"{loc['age_years']:g} y" if loc["age_years"] is not None else "-") + (
            f" of {loc['expected_lifetime_years']:g}" if loc["expected_lifetime_years"] else "")
        copies.add_row(text(loc["name"]), text(loc["media"] or "-"), text(loc["site"]), age,
                       f"{loc['aip_versions']:,}", human_size(loc["bytes"]),
                       str(loc["sole_copies"]), str(loc["below_policy"]),
                       loc["oldest_verified"] or "-")
    out.print(copies)
    out.print("AIP versions by number of copies: " + ", ".join(
        f"{k}: {v:,}" for k, v in c["per_version"].items()))
    for loc in c["locations"]:
        for w in loc["warnings"]:
            out.print(f"  [yellow]{text(loc['name'])}[/]: {text(w)}")
    cov = i["coverage"]
    share = f"{cov['share']:.1%}" if cov["share"] is not None else "-"
    out.print(f"Audit coverage: {cov['verified']:,} of {cov['files']:,} copy files verified "
              f"in the last {cov['days']:g} days ({share}); open problems "
              f"(last audit): {i['open_problems'] if i['open_problems'] is not None else '-'}; "
              f"repairs {i['repairs']['count']:,} ({i['repairs']['failed']} failed); "
              f"restore drills {i['drills']['count']:,} ({i['drills']['failed']} failed)")
    out.print(f"Formats: {len(f['rows'])} held; {f['to_migrate']:,} file(s) to migrate, "
              f"{f['migrated']:,} migrated, {f['refused']:,} migration(s) refused")
    risky = [r for r in f["rows"] if r["risk"] in ("high", "medium")]
    for r in risky[:10]:
        out.print(f"  [yellow]{r['risk']}[/] {text(r['name'] or r['mime'] or '?')} "
                  f"({r['puid'] or '-'}): {r['files']:,} file(s), {r['pending']:,} to migrate")
    if facts["log"]["checkpoint"]:
        cp = facts["log"]["checkpoint"]
        out.print(f"Event log: {facts['log']['entries']:,} entries, checkpoint "
                  f"{cp['size']:,} {cp['root'][:16]}…")


def html(facts: dict) -> str:
    """The report as one HTML document: the same bytes for the same facts."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(loader=PackageLoader("preserve.render", "templates"),
                      autoescape=select_autoescape(["html"]), trim_blocks=True,
                      lstrip_blocks=True)
    env.filters["size"] = human_size
    return env.get_template("report.html").render(
        f=facts, areas=AREAS, levels=LEVELS, reached={a: level_reached(facts["ndsa"], a)
                                                      for a in AREAS},
        growth=_bars([(g["month"], g["bytes"]) for g in facts["holdings"]["growth"]],
                     "bytes ingested by month", human_size),
        copies=_bars([(f"{k} cop{'y' if k == '1' else 'ies'}", v)
                      for k, v in facts["copies"]["per_version"].items()],
                     "AIP versions by number of copies", lambda v: f"{v:,}"))


def _bars(points: list[tuple[str, int]], title: str, label) -> str:
    """A horizontal bar chart as inline SVG (no script, no font to fetch)."""
    if not points:
        return ""
    top = max(v for _, v in points) or 1
    row, width, left = 22, 640, 150
    height = row * len(points) + 30
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" role="img" viewBox="0 0 {width} '
             f'{height}" width="100%"><title>{_esc(title)}</title>']
    for n, (name, value) in enumerate(points):
        y = 20 + n * row
        w = round((width - left - 110) * value / top)
        parts.append(f'<text x="{left - 6}" y="{y + 14}" text-anchor="end" font-size="12">'
                     f'{_esc(name)}</text><rect x="{left}" y="{y + 2}" width="{max(w, 1)}" '
                     f'height="{row - 6}" fill="#2f6f9f"/><text x="{left + w + 6}" '
                     f'y="{y + 14}" font-size="12">{_esc(label(value))}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _esc(s: str) -> str:
    return (str(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;"))


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


def pdf(document: str, target: Path) -> None:
    """Print the HTML report to `target` with headless Chromium (Debian's `chromium`),
    offline: no background network, a throwaway profile."""
    browser = chromium()
    if browser is None:
        raise ConfigError("a PDF report is printed by Chromium, which is not installed",
                          hint="apt-get install chromium, or use --html and print that")
    with tempfile.TemporaryDirectory(prefix="preserve-report-") as tmp:
        page = Path(tmp) / "report.html"
        page.write_text(document, encoding="utf-8")
        partial = target.with_name(f".{target.name}.partial")
        args = [browser, "--headless", "--no-sandbox", "--disable-gpu",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", "--disable-extensions",
                f"--user-data-dir={tmp}/profile", "--no-pdf-header-footer",
                f"--print-to-pdf={partial}", page.as_uri()]
        try:
            done = subprocess.run(args, capture_output=True, text=True, timeout=120)
        except (OSError, subprocess.TimeoutExpired) as e:
            partial.unlink(missing_ok=True)
            raise ToolFailure(f"chromium could not print {target}: {e}") from None
        if done.returncode != 0 or not partial.is_file() or partial.stat().st_size == 0:
            partial.unlink(missing_ok=True)
            raise ToolFailure(f"chromium could not print {target} (exit {done.returncode}): "
                              f"{done.stderr.strip()[-300:]}")
        partial.replace(target)
