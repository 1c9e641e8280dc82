"""Identify files and folders for `preserve identify` (no repository needed)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from preserve.domain.identify import NONE, Identification, identify_paths, siegfried_environment
from preserve.domain.names import special_kind
from preserve.parallel import batched, default_workers, run_batches
from preserve.system import fstree


def _walk(path: Path) -> list[str]:
    if not path.is_dir() or path.is_symlink():
        return [str(path)]
    out = []
    for dirpath, dirnames, filenames in fstree.walk(path):
        dirnames.sort()
        for fn in sorted(filenames):
            full = os.path.join(dirpath, fn)
            if os.path.isfile(full) and not os.path.islink(full):
                out.append(full)
    return out


def _refusal(path: str) -> str | None:
    """Why a path given by name cannot be identified, checked before anything opens it: a
    FIFO, a device or a link to one would block a reader forever (red-team case 44)."""
    try:
        mode = os.stat(path).st_mode  # a link is judged by what it points to
    except OSError as e:
        return f"cannot read: {e.strerror}"
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    return f"not a regular file or folder ({special_kind(mode)}); never opened"


def _identify_batch(paths: list[str]) -> list[tuple[str, Identification]]:
    return list(zip(paths, identify_paths(paths), strict=True))


def identify_tree(paths: list[Path], workers: int | None = None) -> list[tuple[str, Identification]]:
    """(path, identification) for every file given or found under the folders given."""
    refused = {str(p): reason for p in paths if (reason := _refusal(str(p)))}
    files = [f for p in paths if str(p) not in refused for f in _walk(Path(p))]
    use = (workers or default_workers()) if len(files) > 500 else 1
    results: list[tuple[str, Identification]] = []
    siegfried_environment()
    for batch in run_batches(_identify_batch, batched(files, 200), workers=use):
        results.extend(batch)
    order = {p: i for i, p in enumerate(files)}
    results.sort(key=lambda r: order[r[0]])
    return [(p, Identification(None, None, None, None, None, None, NONE, None, None, reason))
            for p, reason in refused.items()] + results
