"""Identify files and folders for `preserve identify` (no repository needed)."""

from __future__ import annotations

import os
from pathlib import Path

from preserve.domain.identify import Identification, identify_paths, siegfried_environment
from preserve.parallel import batched, default_workers, run_batches


def _walk(path: Path) -> list[str]:
    if not path.is_dir() or path.is_symlink():
        return [str(path)]
    out = []
    for dirpath, dirnames, filenames in os.walk(path, followlinks=False):
        dirnames.sort()
        for fn in sorted(filenames):
            full = os.path.join(dirpath, fn)
            if os.path.isfile(full) and not os.path.islink(full):
                out.append(full)
    return out


def _identify_batch(paths: list[str]) -> list[tuple[str, Identification]]:
    return list(zip(paths, identify_paths(paths), strict=True))


def identify_tree(paths: list[Path], workers: int | None = None) -> list[tuple[str, Identification]]:
    """(path, identification) for every file given or found under the folders given."""
    files = [f for p in paths for f in _walk(Path(p))]
    use = (workers or default_workers()) if len(files) > 500 else 1
    results: list[tuple[str, Identification]] = []
    siegfried_environment()
    for batch in run_batches(_identify_batch, batched(files, 200), workers=use):
        results.extend(batch)
    order = {p: i for i, p in enumerate(files)}
    results.sort(key=lambda r: order[r[0]])
    return results
