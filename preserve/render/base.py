"""What every report shares: the consoles (reports to stdout, progress and errors to stderr,
so `--json` output can be piped while a person still sees what happens), JSON documents,
escaping names for rich markup, the progress bar, and the error message."""

from __future__ import annotations

import json
import os
import sys
from contextlib import contextmanager

from rich.console import Console
from rich.markup import escape

from preserve.domain.names import display

LISTED = 50  # warnings and problems shown in a table; the rest are counted


FINDINGS_LISTED = 200  # a validation's findings shown in its table


# Piped (a demo's log, `| less`, a cron mail) a console is 80 columns wide, and tables
# cut ids and paths (issue 22); there, unless COLUMNS says otherwise, they get room.
PIPED_WIDTH = 220


out = Console(highlight=False, soft_wrap=True,
              width=None if sys.stdout.isatty() or "COLUMNS" in os.environ else PIPED_WIDTH)


err = Console(stderr=True, highlight=False, soft_wrap=True)


_emitted = []  # whether a JSON document went to stdout in this run (one at most)


def emit_json(data) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")
    _emitted.append(True)


def emit_json_error(message: str, hint: str | None, code: int) -> None:
    """Under --json, a failure is a JSON document on stdout too, unless the command has
    written its own already (a script reads one document)."""
    if not _emitted:
        emit_json({"status": "error", "error": message, "hint": hint, "exit_code": code})


def emit_json_stream(head: dict, key: str, items) -> None:
    """A JSON object whose `key` is a list written item by item as `items` yields them
    (a validation may have millions of findings: never one string of all of them)."""
    write = sys.stdout.write
    write("{\n")
    for name, value in head.items():
        write(f"  {json.dumps(name)}: {json.dumps(value, ensure_ascii=False, default=str)},\n")
    write(f"  {json.dumps(key)}: [")
    for n, item in enumerate(items):
        write(("," if n else "") + "\n    " + json.dumps(item, ensure_ascii=False, default=str))
    write("\n  ]\n}\n")


def report(result, json_out: bool, show) -> None:
    """A command's result: its JSON document for machines, or `show(result)` for people."""
    if json_out:
        emit_json(result.to_dict())
    else:
        show(result)


def text(value) -> str:
    """Escape for rich markup and make control characters in names visible."""
    return escape(display(str(value))) if value is not None else ""


class RichProgress:
    """A progress bar by files and bytes, with throughput and ETA (restic-style)."""

    def __init__(self, progress):
        self.progress = progress
        self.task = None

    def start(self, phase: str, files: int, nbytes: int) -> None:
        if self.task is not None:
            self.progress.remove_task(self.task)
        self.files_done = 0
        self.task = self.progress.add_task(phase, total=nbytes or None, files=0, nfiles=files)

    def advance(self, files: int, nbytes: int) -> None:
        self.files_done += files
        self.progress.update(self.task, advance=nbytes, files=self.files_done)


@contextmanager
def progress_bar(enabled: bool = True):
    """A RichProgress on stderr; disabled (cron, --json), nothing is drawn or even imported."""
    if not enabled:
        from preserve.domain.progress import Silent

        yield Silent()
        return
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    columns = [
        TextColumn("[bold]{task.description}"), BarColumn(), TaskProgressColumn(),
        TextColumn("{task.fields[files]}/{task.fields[nfiles]} files"), DownloadColumn(),
        TransferSpeedColumn(), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
    ]
    with Progress(*columns, console=err, transient=True) as p:
        yield RichProgress(p)


def failure(message: str, hint: str | None = None, items: list | None = None) -> None:
    err.print(f"[bold red]error:[/] {escape(message)}")
    for item in (items or [])[:200]:
        if hasattr(item, "code"):
            err.print(f"  {item.code} {text(item.location())}: {text(item.message)}")
        else:
            err.print(f"  - {text(item)}")
    if items and len(items) > 200:
        err.print(f"  … and {len(items) - 200} more")
    if hint:
        err.print(f"[dim]hint: {escape(hint)}[/]")
