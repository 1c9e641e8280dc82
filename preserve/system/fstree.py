"""Walking, making and removing folder trees at any depth.

Python 3.11's os.walk, os.makedirs, Path.mkdir(parents=True) and shutil.rmtree
recurse once per level: a collection nested 1,100 folders deep (red-team case 92)
exhausts the interpreter's recursion limit and turns an ordinary source into a
crash. These keep their own stacks instead. Links are never followed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator


def walk(top: str | os.PathLike) -> Iterator[tuple[str, list[str], list[str]]]:
    """os.walk(top, followlinks=False) top-down, without recursion: (dirpath, dirnames,
    filenames); the caller may prune or sort dirnames in place, as with os.walk. Links to
    folders are listed with the files, never entered. A folder that cannot be read is
    skipped, as os.walk does."""
    stack = [os.fspath(top)]
    while stack:
        path = stack.pop()
        dirs: list[str] = []
        files: list[str] = []
        try:
            with os.scandir(path) as entries:
                for entry in entries:
                    (dirs if entry.is_dir(follow_symlinks=False) else files).append(entry.name)
        except OSError:
            continue
        yield path, dirs, files
        stack.extend(os.path.join(path, d) for d in reversed(dirs))


def makedirs(path: str | os.PathLike) -> None:
    """mkdir -p: every missing folder on the way to `path`, at any depth. Strings, not
    pathlib (which interns every name it parses: this is called once per file)."""
    path = os.fspath(path)
    missing = []
    while path and not os.path.isdir(path):  # "": the working folder, which exists
        missing.append(path)
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    for folder in reversed(missing):
        try:
            os.mkdir(folder)
        except FileExistsError:
            if not os.path.isdir(folder):
                raise


def rmtree(path: str | os.PathLike, *, ignore_errors: bool = False) -> None:
    """Remove the tree at `path` (links removed, never followed), at any depth. Errors are
    raised as OSError unless ignore_errors; a missing `path` is not an error then either."""
    stack: list[tuple[str, bool]] = [(os.fspath(path), False)]
    while stack:
        current, emptied = stack.pop()
        try:
            if emptied:
                os.rmdir(current)
                continue
            if not os.path.isdir(current) or os.path.islink(current):
                os.unlink(current)
                continue
            stack.append((current, True))
            with os.scandir(current) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append((entry.path, False))
                    else:
                        os.unlink(entry.path)
        except FileNotFoundError:
            if not ignore_errors and current == os.fspath(path) and not emptied:
                raise
        except OSError:
            if not ignore_errors:
                raise
