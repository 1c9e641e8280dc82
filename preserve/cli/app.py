"""What the commands share: the typer app and its global options, opening the repository,
whether to show progress, and `main`, which maps every error to a message and an exit code
in one place: 0 success, 1 problems found, 2 usage or configuration, 3 storage unreachable
or tool failure, 130 interrupted."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from preserve import __version__, render
from preserve.errors import EXIT_INTERRUPTED, EXIT_OK, EXIT_UNREACHABLE, EXIT_USAGE, PreserveError

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
    opened = None  # the repository a command opened: its new events are signed after it


def repo_root() -> Path:
    from preserve.repository import default_root

    return State.repo_dir or default_root()


def open_repo():
    from preserve.repository import Repository

    State.opened = Repository(repo_root())
    return State.opened


def show_progress() -> bool:
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


def copies_missing(what: str, result) -> None:
    """Exit 3 naming the locations an ingest or a new version could not be copied to: it is
    stored (at result.replicas), and `preserve replicate` makes the rest."""
    if result.replication_problems:
        render.failure(f"{what} is stored at {', '.join(result.replicas)}, but "
                       f"{len(result.replication_problems)} of the copies policy asks for could "
                       "not be made", "run 'preserve replicate' once the location is back",
                       result.replication_problems)
        raise typer.Exit(EXIT_UNREACHABLE)


def _interrupted() -> None:
    render.err.print("[bold yellow]interrupted:[/] stopped cleanly; nothing half-written was left "
                     "behind. Run the same command again to do the work.")


def named_or_all(aips: list[str] | None, all_aips: bool) -> list[str] | None:
    """The AIPs a command over AIPs is given (None: --all); neither is a usage error."""
    if not aips and not all_aips:
        raise typer.BadParameter("name AIPs, or give --all", param_hint="AIPS")
    return None if all_aips else aips


def enqueue_aips(repo, task: str, aips: list[str] | None, all_aips: bool,
                 json_out: bool) -> None:
    """--queue of a command over named AIPs or --all: a job per AIP."""
    from preserve.admin.tasks import enqueue_per_aip

    ids = ([repo.catalog.resolve(a) for a in aips] if aips and not all_aips
           else [a.id for a in repo.catalog.list_aips()])
    enqueued(task, enqueue_per_aip(repo, task, ids), json_out)


def enqueued(task: str, jobs: list[int], json_out: bool, **extra) -> None:
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


storage_app = typer.Typer(no_args_is_help=True, help="Storage locations: add, list, check.")
app.add_typer(storage_app, name="storage")
catalog_app = typer.Typer(no_args_is_help=True,
                          help="The catalog: compare it with another, rebuild it from storage.")
app.add_typer(catalog_app, name="catalog")
log_app = typer.Typer(no_args_is_help=True,
                      help="The tamper-evident event log: verify it, print its checkpoint.")
app.add_typer(log_app, name="log")
access_app = typer.Typer(no_args_is_help=True,
                         help="Access copies (DIP): made from the AIPs, kept outside them.")
app.add_typer(access_app, name="access")


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the command and turn every failure into a message and an exit code."""
    command = typer.main.get_command(app)
    State.opened = None
    try:
        code = command.main(args=argv, prog_name="preserve", standalone_mode=False)
        if code == EXIT_INTERRUPTED:  # click/typer return Ctrl-C as exit code 130
            _interrupted()
        else:
            _sign_log()
    except PreserveError as e:
        _sign_log()
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
            _sign_log()
        elif hasattr(e, "show") and hasattr(e, "exit_code"):  # usage errors
            e.show()
            code = EXIT_USAGE
        else:
            _internal_error(e)
            code = EXIT_UNREACHABLE
    sys.exit(code if isinstance(code, int) else EXIT_OK)


def _sign_log() -> None:
    """After a command: the events it recorded join the signed log, and every location
    gets its copy. A failure here is said, never hides the command's own result (the next
    run signs them; `log verify` names events left unsigned)."""
    repo, State.opened = State.opened, None
    if repo is None:
        return
    from preserve.storage.history import publish_if_pending

    try:
        failed = publish_if_pending(repo)
    except PreserveError as e:
        render.err.print(f"[yellow]warning:[/] the events recorded could not be signed into "
                         f"the event log: {render.text(e.message)}"
                         + (f" ({render.text(e.hint)})" if e.hint else ""))
        return
    for name, why in sorted(failed.items()):
        render.err.print(f"[yellow]warning:[/] the event log could not be copied to location "
                         f"'{render.text(name)}' ({render.text(why)}); the next run copies it")


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
