"""Validators for pictures, sound and moving images: each decodes the whole file, since
only a full decode finds a truncated scan or a broken frame (issue 26; the choice per
format is docs/user-guide.md, "Validation at ingest").

- Still images (JPEG, PNG, GIF, TIFF, BMP, WebP, JPEG 2000): Pillow's `verify` (PNG chunk
  CRCs, structure) and then a load of every frame, a truncated file being an error, not
  a grey band. A picture Pillow cannot open is decoded by ImageMagick with
  `-regard-warnings` instead.
- Sound and video: a full ffmpeg decode (`-v error -f null -`): any error it prints is a
  finding. FLAC is tested by `flac -t` too (its MD5 of the decoded samples), WAV by its
  RIFF chunk lengths, which ffmpeg does not hold against the file's length.

These functions run in validator_run's child process, under the sandbox of every tool.
"""

from __future__ import annotations

import re
import struct
import warnings

from preserve.errors import ToolFailure
from preserve.pipeline.file_verdicts import Checked, not_checked
from preserve.system.tools import find_tool, run_tool, tool_version

MEMORY_MB = 4096  # what a decoder may take (the same limit as migration's checks)


def tool_named(name: str) -> str:
    return f"{name} {tool_version(name) or '(version unknown)'}"


ADDRESS = re.compile(r" @ 0x[0-9a-f]+")  # ffmpeg names its decoder by a memory address
DAMAGE_WARNING = re.compile(r"corrupt|truncat|premature|broken", re.I)


def check_image(path: str, timeout: float) -> Checked:
    import PIL
    from PIL import Image, ImageSequence

    Image.MAX_IMAGE_PIXELS = None  # the sandbox's memory limit bounds a decompression bomb
    checked = Checked(tools=[f"Pillow {PIL.__version__}"],
                      method="verified and every frame decoded by Pillow")
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        try:
            with Image.open(path) as im:
                im.verify()
            with Image.open(path) as im:
                frames = 0
                for frame in ImageSequence.Iterator(im):
                    frame.load()
                    frames += 1
                if frames > 1:
                    checked.method = f"verified and all {frames} frames decoded by Pillow"
        except Image.UnidentifiedImageError:
            return _image_by_imagemagick(path, timeout)
        except (OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError,
                KeyError, TypeError, ZeroDivisionError) as e:
            checked.fail(f"Pillow: {type(e).__name__}: {e}")
        except MemoryError:
            checked.fail("Pillow: the decoded picture does not fit the validator's memory "
                         "limit")
    for w in said:  # a corrupt TIFF directory or EXIF block is only a warning to Pillow
        message = f"Pillow warns: {w.message}"
        if DAMAGE_WARNING.search(str(w.message)):
            checked.fail(message)
        else:
            checked.note(message)
    return checked


def _image_by_imagemagick(path: str, timeout: float) -> Checked:
    """A picture Pillow does not know: ImageMagick decodes every frame, warnings regarded."""
    if find_tool("convert") is None:
        return not_checked("Pillow cannot read this picture and ImageMagick is not installed")
    checked = Checked(tools=[tool_named("convert")],
                      method="every frame decoded by ImageMagick (-regard-warnings)")
    run = run_tool(["convert", "-regard-warnings", path, "null:"], timeout=timeout,
                   memory_mb=MEMORY_MB)
    if run.returncode != 0 or run.stderr.strip():
        checked.fail("ImageMagick: " + (run.stderr.strip() or f"exit {run.returncode}"))
    return checked


def check_audio_video(path: str, timeout: float, *, flac: bool = False) -> Checked:
    if _is_riff_wave(path) and _pcm(path):
        return _check_pcm_wave(path)
    if find_tool("ffmpeg") is None:
        return not_checked("ffmpeg is not installed: sound and video are not decoded")
    checked = Checked(tools=[tool_named("ffmpeg")],
                      method="every stream decoded by ffmpeg (-v error -f null)")
    run = run_tool(["ffmpeg", "-nostdin", "-hide_banner", "-v", "error", "-i", path,
                    "-map", "0", "-f", "null", "-"], timeout=timeout, memory_mb=MEMORY_MB)
    said = [ADDRESS.sub("", line).strip() for line in run.stderr.splitlines() if line.strip()]
    if run.returncode != 0 or said:
        checked.fail("ffmpeg: " + ("; ".join(said[:3]) if said else f"exit {run.returncode}"))
    if flac:
        _flac_test(path, timeout, checked)
    if path.lower().endswith((".wav", ".wave", ".bwf")) or _is_riff_wave(path):
        for finding in riff_wave_findings(path):
            checked.fail(finding)
        checked.method += "; RIFF chunk lengths held against the file's"
    return checked


def _flac_test(path: str, timeout: float, checked: Checked) -> None:
    if find_tool("flac") is None:
        checked.note("flac is not installed: its MD5 of the samples was not tested")
        return
    checked.tools.append(tool_named("flac"))
    checked.method += "; flac -t (the samples against the stream's MD5)"
    try:
        run = run_tool(["flac", "-t", "-s", path], timeout=timeout, memory_mb=MEMORY_MB)
    except ToolFailure as e:
        checked.note(e.message)
        return
    if run.returncode != 0:
        said = [line for line in run.stderr.splitlines() if line.strip()]
        checked.fail("flac -t: " + ("; ".join(said[-2:]) if said else f"exit {run.returncode}"))


def _check_pcm_wave(path: str) -> Checked:
    """Uncompressed samples need no decoding: every sample value is valid, so what can be
    wrong is the structure (a data chunk that claims more than the file holds)."""
    checked = Checked(tools=["preserve RIFF reader"],
                      method="RIFF chunks and their lengths held against the file's "
                             "(PCM samples: nothing to decode)")
    for finding in riff_wave_findings(path):
        checked.fail(finding)
    return checked


def _pcm(path: str) -> bool:
    """Whether a RIFF WAVE file's fmt chunk says integer or float PCM (1, 3, or an
    extensible format whose sub-format is one of them)."""
    with open(path, "rb") as f:
        f.seek(12)
        while len(header := f.read(8)) == 8:
            chunk, length = header[:4], struct.unpack("<I", header[4:])[0]
            if chunk == b"fmt ":
                fmt = f.read(min(length, 40))
                tag = struct.unpack("<H", fmt[:2])[0] if len(fmt) >= 2 else 0
                if tag == 0xFFFE and len(fmt) >= 26:
                    tag = struct.unpack("<H", fmt[24:26])[0]
                return tag in (1, 3)
            f.seek(length + (length & 1), 1)
    return False


def _is_riff_wave(path: str) -> bool:
    with open(path, "rb") as f:
        head = f.read(12)
    return head[:4] == b"RIFF" and head[8:12] == b"WAVE"


def riff_wave_findings(path: str) -> list[str]:
    """A WAV file's chunks held against its length: a data chunk that claims more bytes
    than follow is a truncated recording (players stop early or read garbage)."""
    import os

    size = os.path.getsize(path)
    found: list[str] = []
    with open(path, "rb") as f:
        head = f.read(12)
        if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return ["not a RIFF WAVE file, though identified as one"]
        riff = struct.unpack("<I", head[4:8])[0]
        placeholder = riff in (0, 0xFFFFFFFF)  # written by streaming recorders
        if not placeholder and riff + 8 > size:
            found.append(f"the RIFF header declares {riff + 8} bytes, the file holds {size}")
        seen_data = False
        while True:
            header = f.read(8)
            if len(header) < 8:
                break
            chunk, length = header[:4], struct.unpack("<I", header[4:])[0]
            start = f.tell()
            if chunk == b"data":
                seen_data = True
                if not placeholder and start + length > size:
                    found.append(f"the data chunk declares {length} bytes of samples, "
                                 f"{size - start} follow it")
            elif start + length > size:
                found.append(f"the {chunk.decode('latin-1')!r} chunk declares {length} bytes, "
                             f"{size - start} follow it")
            f.seek(length + (length & 1), 1)
        if not seen_data:
            found.append("no data chunk: the file holds no samples")
    return found
