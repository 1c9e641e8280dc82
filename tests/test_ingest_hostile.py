"""Hostile and careless sources: files changing under ingest, FIFOs and devices, trees
nested past the recursion limit, unusable collection names (red-team cases 44, 61, 72,
92). Each is refused with a message and the contract's exit code, or ingested intact."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import random
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from preserve.errors import BadArgument, SourceRefused
from preserve.ingest.ingest import Metadata, ingest
from preserve.system import fstree
from tests.conftest import stored_bag
from tests.test_cli import run


def _rewrite_in_place(path: str, stop, started) -> None:
    """Rewrite 1 MiB blocks of `path` in place, same size, a new counter each pass."""
    fd = os.open(path, os.O_WRONLY)
    size = os.fstat(fd).st_size
    n = 0
    started.set()
    while not stop.is_set():
        block = (b"%08d" % n) * (1 << 17)
        for offset in range(0, size, 2 << 20):
            os.pwrite(fd, block, offset)
        n += 1
    os.close(fd)


def test_a_file_rewritten_in_place_during_ingest_is_refused_never_stored_torn(repo, tmp_path):
    """Case 61: only the size was compared; the stored copy mixed blocks of ten rewrite
    generations."""
    src = tmp_path / "mod"
    src.mkdir()
    target = src / "big.bin"
    target.write_bytes(random.Random(3).randbytes(24 << 20))
    (src / "small.txt").write_text("steady\n")
    context = multiprocessing.get_context("spawn")
    stop, started = context.Event(), context.Event()
    writer = context.Process(target=_rewrite_in_place, args=(str(target), stop, started))
    writer.start()
    try:
        assert started.wait(30)
        with pytest.raises(SourceRefused) as refused:
            ingest(repo, src, Metadata("m"), workers=1)
    finally:
        stop.set()
        writer.join(30)
    assert any("big.bin" in item and "changed while being read" in item
               for item in refused.value.items)
    assert repo.catalog.list_aips() == [] and not any(repo.staging.iterdir())
    # once the writer has stopped, the same source goes in, and what is stored is the file
    result = ingest(repo, src, Metadata("m"), workers=1)
    stored = stored_bag(repo, result.aip_id) / "data" / "big.bin"
    assert hashlib.sha256(stored.read_bytes()).digest() == \
        hashlib.sha256(target.read_bytes()).digest()


def test_a_tar_rewritten_while_it_is_read_is_refused(repo, tmp_path, monkeypatch):
    src = tmp_path / "t"
    src.mkdir()
    (src / "a.txt").write_text("a\n")
    archive = tmp_path / "t.tar"
    with tarfile.open(archive, "w") as t:
        t.add(src / "a.txt", "a.txt")
    from preserve.ingest import archives as sources

    original = sources.TarSource.members

    def members_then_touch(self):
        yield from original(self)
        os.utime(archive, ns=(time.time_ns(), time.time_ns() + 5_000_000_000))

    monkeypatch.setattr(sources.TarSource, "members", members_then_touch)
    with pytest.raises(SourceRefused) as refused:
        ingest(repo, archive, Metadata("t"))
    assert any("changed while it was being read" in item for item in refused.value.items)


@pytest.mark.parametrize("command", ["ingest", "identify"])
def test_fifos_devices_and_links_to_them_are_refused_at_once(tmp_path, command):
    """Case 44: each of these hung for ever (the FIFO was opened to sniff a zip)."""
    repo_root = tmp_path / "repo"
    run(repo_root, "init")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    link = tmp_path / "link"
    link.symlink_to(fifo)
    targets = [fifo, Path("/dev/zero")] + ([link] if command == "identify" else [])
    for target in targets:
        args = ["ingest", target, "-c", "x"] if command == "ingest" else ["identify", target]
        started = time.monotonic()
        result = run(repo_root, *args, check_code=1)
        assert time.monotonic() - started < 30
        assert ("FIFO" in result.stderr + result.stdout
                or "device" in result.stderr + result.stdout), result.stderr


@pytest.mark.parametrize("name", ["", "   ", "line1\nline2", "cr\rX", "ctl\x1b[31mRED\x07",
                                  " padded"])
def test_unusable_collection_names_exit_2(tmp_path, name):
    """Case 72: blank and control-character names were stored; a CR made bag-info.txt and
    the catalog disagree."""
    repo_root = tmp_path / "repo"
    run(repo_root, "init")
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("a")
    result = run(repo_root, "ingest", src, "-c", name, check_code=2)
    assert "collection name" in result.stderr
    assert run(repo_root, "list", "--json").stdout.strip() == "[]"


def test_a_collection_name_in_any_script_is_fine(repo, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("a")
    for name in ("Қазақ мұрағаты", "Azərbaycan arxivi", "📜 letters"):
        assert ingest(repo, src, Metadata(name)).collection == name
    with pytest.raises(BadArgument):
        ingest(repo, src, Metadata("x", title="bell\x07"))


@pytest.fixture
def deep_tree(tmp_path):
    """1,100 nested folders and a leaf; removed by fstree (pytest's clean-up recurses)."""
    root = tmp_path / "deep"
    fstree.makedirs(root / "/".join(["d"] * 1100))
    (root / "/".join(["d"] * 1100) / "leaf.txt").write_text("x")
    yield root
    for child in tmp_path.iterdir():
        fstree.rmtree(child, ignore_errors=True)


@pytest.mark.parametrize("kind", ["folder", "tar"])
def test_a_tree_nested_past_the_recursion_limit_is_ingested_and_exported(tmp_path, deep_tree,
                                                                         kind):
    """Case 92: RecursionError as an internal error (exit 3) for a folder and a tar."""
    repo_root = tmp_path / "repo"
    run(repo_root, "init")
    source = deep_tree
    if kind == "tar":
        source = tmp_path / "deep.tar"
        subprocess.run(["tar", "-C", str(tmp_path), "-cf", str(source), "deep"], check=True)
    run(repo_root, "ingest", source, "-c", "deep")
    aip = __import__("json").loads(run(repo_root, "list", "--json").stdout)[0]["id"]
    run(repo_root, "audit", "--full")
    run(repo_root, "export", aip, tmp_path / "out")
    run(repo_root, "validate", tmp_path / "out")


def test_a_fifo_put_where_a_scanned_file_was_is_never_opened_for_reading(tmp_path):
    """The sibling of case 44: a file replaced by a FIFO between the scan and the copy
    would block the copier for ever; it is refused as not a regular file."""
    from preserve.pipeline.copying import copy_batch

    fifo = tmp_path / "was-a-file"
    os.mkfifo(fifo)
    started = time.monotonic()
    [result] = copy_batch((("folder", str(tmp_path)), ("sha256",),
                           [("was-a-file", str(fifo), str(tmp_path / "copy"), 0)]))
    assert time.monotonic() - started < 5
    assert result.error and "not a regular file" in result.error
