"""How the single pass opens one entry of a source, in whichever process runs the copy: a
file on disk, or a zip member by its index (tar members are streamed by their own
reader); and what reading a damaged archive raises, so that it is named as the source's
fault, never taken for a bug.

It sits below ingest (which scans sources) and the copy pass (which reads them), so the
copy workers import neither the scanners nor what they need.
"""

from __future__ import annotations

import lzma
import os
import tarfile
import zipfile
import zlib
from typing import BinaryIO

from preserve.domain.fixity import open_regular

# What reading a damaged or unreadable archive raises: each is a fault of the source,
# never a bug in preserve.
ARCHIVE_ERRORS = (
    OSError,              # gzip's CRC and length checks, bzip2's bad streams, read errors
    EOFError,             # a compressed stream that ends early (truncated)
    zipfile.BadZipFile,   # a bad CRC, a header name that differs from the directory's
    tarfile.TarError,     # a damaged tar header
    zlib.error,           # corrupt deflate data inside a zip member
    lzma.LZMAError,       # corrupt xz data
    NotImplementedError,  # zipfile: a member compressed with a method it cannot read
    RuntimeError,         # zipfile: an encrypted member (refused at scan; a changed zip)
)


def archive_error(e: BaseException) -> str:
    if isinstance(e, EOFError):
        return "it ends before its compressed data does (truncated)"
    return str(e) or type(e).__name__


ON_DISK = ("folder", "bag", "bag-as-folder")  # source kinds whose entries are files


def file_stamp(st: os.stat_result) -> tuple:
    """What changes when a file's content may have: size, modification and change times
    (ns), and which file it is."""
    return st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev


def open_entry(spec: tuple, ref: object) -> BinaryIO:
    """Open one entry's bytes in whichever process runs the copy."""
    kind, path = spec
    if kind in ON_DISK:
        return open_regular(ref, follow=True)
    if kind == "zip":  # by index: two members may carry one name
        handle = _zip_handle(path)
        return handle.open(handle.infolist()[int(ref)])
    raise ValueError(f"entries of a {kind} source are opened by its own reader")


_ZIPS: dict[str, zipfile.ZipFile] = {}


def _zip_handle(path: str) -> zipfile.ZipFile:
    if path not in _ZIPS:
        _ZIPS[path] = zipfile.ZipFile(path)
    return _ZIPS[path]
