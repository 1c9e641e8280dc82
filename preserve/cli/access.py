"""Commands that give AIPs out: export."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from preserve import render
from preserve.cli.app import JsonOpt, open_repo, show_progress


def export(
    aip: Annotated[str, typer.Argument(help="AIP id (or a unique prefix).")],
    dest: Annotated[Path, typer.Argument(help="New folder to write the bag into.")],
    version: Annotated[int | None, typer.Option(help="AIP version (default: latest).")] = None,
    location: Annotated[str | None, typer.Option(help="Read from this location.")] = None,
    json_out: JsonOpt = False,
):
    """Write an AIP out as a BagIt bag, verifying every byte on the way."""
    from preserve.access.export import export as run_export

    repo = open_repo()
    with render.progress_bar(show_progress()) as progress:
        result = run_export(repo, aip, dest, version=version, location=location,
                            progress=progress)
    if json_out:
        render.emit_json(result.to_dict())
    else:
        render.out.print(f"[bold green]Exported[/] AIP {result.aip_id} v{result.version} to "
                         f"{render.text(result.destination)} ({result.files} files, "
                         f"{result.bytes} bytes, all verified, read from {result.location})")
