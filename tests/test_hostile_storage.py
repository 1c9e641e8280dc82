"""What someone who can write the storage can put there, and how every reader takes it
(red team 2026-12: cases 13, 14, 15, 59). A FIFO, a link or a sparse giant in place of a
stored file is damage: named, exit 1, within seconds; never a hang, never "no space",
never an internal error."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from tests import media
from tests.conftest import content_key
from tests.test_cli import run

pytestmark = pytest.mark.storage_left_damaged


def _repo_with_one_aip(tmp_path: Path, make) -> tuple[Path, str, Path]:
    src = tmp_path / "src"
    src.mkdir()
    name = make(src)
    root = tmp_path / "repo"
    run(root, "init")
    aip = json.loads(run(root, "ingest", src, "-c", "c", "--json").stdout)["id"]
    return root, aip, root / "aips" / content_key(aip) / "data" / name


def _text(src: Path) -> str:
    (src / "readme.txt").write_text("x" * 3000)
    (src / "other.txt").write_text("kept\n")
    return "readme.txt"


def _bmp(src: Path) -> str:
    media.bmp(src / "scan.bmp")
    return "scan.bmp"


def _fifo(path: Path) -> None:
    path.unlink()
    os.mkfifo(path)


def _timed(root: Path, *args, code: int) -> str:
    """What the command said (stdout, then stderr), once it ended with `code` in time."""
    started = time.monotonic()
    done = run(root, *args, check_code=code)
    assert time.monotonic() - started < 60
    return done.stdout + ("\n" + done.stderr if done.stderr else "")


def test_a_fifo_in_storage_is_damage_to_export_and_nothing_is_left(tmp_path):
    root, aip, stored = _repo_with_one_aip(tmp_path, _text)
    _fifo(stored)
    said = _timed(root, "export", aip, tmp_path / "out", code=1)
    assert "readme.txt" in said and "not a regular file" in said
    assert sorted(p.name for p in tmp_path.iterdir()) == ["repo", "src"]


def test_a_sparse_giant_in_place_of_a_small_file_is_damage_not_a_full_disk(tmp_path):
    root, aip, stored = _repo_with_one_aip(tmp_path, _text)
    with open(stored, "r+b") as f:
        f.truncate(4 << 30)
    said = _timed(root, "export", aip, tmp_path / "out", code=1)
    assert "4,294,967,296 bytes where 3,000 were recorded" in said
    assert "no space" not in said


def test_a_fifo_in_storage_is_refused_by_migrate(tmp_path):
    root, aip, stored = _repo_with_one_aip(tmp_path, _bmp)
    _fifo(stored)
    [rejected] = json.loads(_timed(root, "migrate", "--apply", "--json", code=1))["rejected"]
    assert "not a regular file" in rejected["reason"]
    assert not list((root / "staging").iterdir())


def test_a_fifo_in_storage_fails_replicate_and_reidentify_names_it(tmp_path):
    root, aip, stored = _repo_with_one_aip(tmp_path, _text)
    _fifo(stored)
    (tmp_path / "second").mkdir()
    run(root, "storage", "add", "second", tmp_path / "second")
    said = _timed(root, "replicate", "--to", "second", code=1)
    assert "readme.txt" in said and "not a regular file" in said
    said = _timed(root, "reidentify", "--all", code=1)
    assert "readme.txt" in said and "internal error" not in said
