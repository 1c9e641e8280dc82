"""The makers of access copies (issue 28): one per kind of file, each turning one stored
file into what a reader is given, by the policy's choice (policies/default.yaml
`access.copies`):

- documents: a PDF becomes a PDF/A-2b with a text layer (OCRmyPDF 17: pages without text
  are read by OCR, the others kept as they are); an office document a PDF/A-2b made by
  LibreOffice; each page is also rendered (pdftoppm, 150 dpi) for the page viewer;
- images: every frame split to PNG by ImageMagick, then a JPEG per frame to download and,
  for `iiif`, level-0 IIIF Image API 3 tiles per frame (libvips `dzsave`), the viewer's
  pages;
- sound: Opus or MP3 (ffmpeg); video: MP4 (H.264 and AAC, playable in every browser) or
  WebM (VP9 and Opus), with a poster frame.

Untrusted bytes are only ever read by the tools, sandboxed with a timeout and a memory
limit (system/tools.run_tool); libvips, in this process, reads only the PNG files those
tools wrote. Everything is written under `out` with names made from the source's own
(`<name>.jpg`, `<name>.pages/0001/`, `<name>.thumb.jpg`), which the caller moves into the
access location.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from preserve.errors import ToolFailure
from preserve.pipeline.text_extraction import (
    IMAGE_MIMES,
    OFFICE_SHEETS,
    OFFICE_SLIDES,
    OFFICE_TEXT,
    split_frames,
)
from preserve.system.tools import run_tool, tool_version

TIMEOUT = 1800
MEMORY_MB = 4096
VIEW_DPI = 150  # a page of a document, rendered for the viewer
TILE_SIZE = 512
THUMBNAIL_WIDTH = 300
JPEG_OPTIONS = "[Q=85,strip]"
OCRMYPDF_HAS_TEXT = 6  # its exit code for a page that has text already
OFFICE = OFFICE_TEXT | OFFICE_SHEETS | OFFICE_SLIDES


@dataclass
class Made:
    """What one source gave: the files a reader downloads, the viewer's pages, a
    thumbnail, and the tools that made them; names relative to the AIP's access folder."""
    files: dict[str, str] = field(default_factory=dict)  # name -> sha256
    pages: list[dict] = field(default_factory=list)  # {"tiles": folder, "width", "height"}
    thumbnail: str | None = None
    player: str | None = None  # "audio" or "video": the first file plays in the page
    tools: list[str] = field(default_factory=list)
    detail: str = ""
    languages: list[str] = field(default_factory=list)  # OCR's, where a copy was read

    def names(self) -> list[str]:
        """Everything made, top level: what is moved into the access location."""
        return [*self.files, *([self.thumbnail] if self.thumbnail else []),
                *([pages_folder(self.pages[0]["tiles"])] if self.pages else [])]


def kind_of(mime: str | None) -> str | None:
    """The policy's kind for a MIME type: documents, images, sound, video, or None."""
    mime = (mime or "").split(";")[0].strip().lower()
    if mime == "application/pdf" or mime in OFFICE:
        return "documents"
    if mime in IMAGE_MIMES:
        return "images"
    if mime.startswith("audio/"):
        return "sound"
    if mime.startswith("video/"):
        return "video"
    return None


def make(kind: str, choice: str, mime: str, source: Path, name: str, out: Path,
         languages: Callable[[], list[str]], jobs: int = 1) -> Made:
    """One access copy of `source` (the stored file `name`), by kind and choice; `jobs`:
    the cores it may use (a single book is read on all of them)."""
    (out / name).parent.mkdir(parents=True, exist_ok=True)
    if kind == "documents":
        if mime.split(";")[0].strip().lower() == "application/pdf":
            return _pdf(source, name, out, languages, jobs)
        return _office(source, name, out)
    if kind == "images":
        return _image(source, name, out, tiles=choice == "iiif")
    if kind in ("sound", "video"):
        return _media(kind, choice, source, name, out)
    raise ValueError(f"no access copy of kind {kind}")


def _pdf(source: Path, name: str, out: Path, languages: Callable[[], list[str]],
         jobs: int) -> Made:
    """A PDF of scans: OCRmyPDF makes a PDF/A-2b with a text layer. A PDF with text of its
    own is not rasterised: a PDF/A already is copied as it is; another gets a text layer
    on its pages of scans (OCRmyPDF --skip-text) as a plain PDF, because Ghostscript
    10.0.0 (Debian 12) corrupts PDFs with text on the way to PDF/A (OCRmyPDF refuses it;
    `migrate` makes the PDF/A, proven, and the copy is then made from that)."""
    chosen = languages()
    dest = out / name
    base = [sys.executable, "-m", "ocrmypdf", "-l", "+".join(chosen), "--jobs", str(jobs),
            "--quiet"]
    env = {**os.environ, "OMP_THREAD_LIMIT": "1"}
    run = run_tool([*base, "--output-type", "pdfa-2", str(source), str(dest)],
                   timeout=TIMEOUT, memory_mb=MEMORY_MB, env=env)
    detail = f"a PDF/A-2b with a text layer (OCR languages {'+'.join(chosen)})"
    if run.returncode == OCRMYPDF_HAS_TEXT:
        if _pdfa_part(source):
            shutil.copyfile(source, dest)
            detail = "the PDF/A itself (it has a text layer of its own)"
        else:
            run = run_tool([*base, "--skip-text", "--output-type", "pdf", str(source),
                            str(dest)], timeout=TIMEOUT, memory_mb=MEMORY_MB, env=env)
            detail = ("a PDF with its own text, its pages of scans given a text layer "
                      f"(OCR languages {'+'.join(chosen)}; not PDF/A: migrate makes that)")
    if run.returncode not in (0, OCRMYPDF_HAS_TEXT) or not dest.is_file():
        raise ToolFailure(f"OCRmyPDF could not make a copy: {run.summary()}")
    made = _viewer_pages(_render_pdf(dest, out), name, out, tiles=True)
    made.files = {name: sha256_of(dest), **made.files}
    made.tools = [f"OCRmyPDF {ocrmypdf_version()}", f"tesseract {tool_version('tesseract')}",
                  f"pdftoppm {tool_version('pdftoppm')}", *made.tools]
    made.detail = detail
    made.languages = chosen
    return made


def _pdfa_part(pdf: Path) -> str | None:
    """The PDF/A part and conformance the file claims (e.g. 2B), or None."""
    import pikepdf

    try:
        with pikepdf.open(pdf) as document:
            return document.open_metadata().pdfa_status or None
    except (pikepdf.PdfError, OSError, ValueError):
        return None


def _office(source: Path, name: str, out: Path) -> Made:
    work = out / ".office"
    work.mkdir()
    profile = (work / "profile").as_uri()
    run = run_tool(["soffice", "--headless", "--norestore", f"-env:UserInstallation={profile}",
                    "--convert-to", 'pdf:writer_pdf_Export:{"SelectPdfVersion":'
                    '{"type":"long","value":"2"}}', "--outdir", str(work), str(source)],
                   timeout=TIMEOUT, memory_mb=MEMORY_MB)
    made_pdf = work / (source.stem + ".pdf")
    if run.returncode != 0 or not made_pdf.is_file():
        raise ToolFailure(f"LibreOffice could not make a PDF/A copy: {run.summary()}")
    pdf_name = f"{name}.pdf"
    os.replace(made_pdf, out / pdf_name)
    made = _viewer_pages(_render_pdf(out / pdf_name, out), name, out, tiles=True)
    made.files = {pdf_name: sha256_of(out / pdf_name), **made.files}
    made.tools = [f"LibreOffice {tool_version('soffice')}", *made.tools]
    made.detail = "a PDF/A-2b made by LibreOffice"
    return made


def _render_pdf(pdf: Path, out: Path) -> list[Path]:
    folder = out / ".render"
    folder.mkdir(exist_ok=True)
    run = run_tool(["pdftoppm", "-r", str(VIEW_DPI), "-png", str(pdf), str(folder / "p")],
                   timeout=TIMEOUT, memory_mb=2048)
    pages = sorted(folder.glob("p-*.png"))
    if run.returncode != 0 or not pages:
        raise ToolFailure(f"pdftoppm could not render the copy's pages: {run.summary()}")
    return pages


def _image(source: Path, name: str, out: Path, *, tiles: bool) -> Made:
    frames = split_frames(source, out / ".frames", TIMEOUT)
    made = _viewer_pages(frames, name, out, tiles=tiles, jpegs=True)
    made.tools = [f"ImageMagick {tool_version('convert')}", *made.tools]
    made.detail = ("a JPEG per frame and level-0 IIIF tiles" if tiles
                   else "a JPEG per frame")
    return made


def _viewer_pages(pngs: list[Path], name: str, out: Path, *, tiles: bool,
                  jpegs: bool = False) -> Made:
    """Tiles (and, for images, a JPEG to download) of every page, and a thumbnail of the
    first: libvips, on PNG files our sandboxed tools wrote."""
    import pyvips

    made = Made(tools=[f"libvips {pyvips.version(0)}.{pyvips.version(1)}"
                       f".{pyvips.version(2)}"])
    for number, png in enumerate(pngs, 1):
        image = _eight_bit(pyvips.Image.new_from_file(str(png)))
        if jpegs:
            jpeg = f"{name}.jpg" if len(pngs) == 1 else f"{name}.{number:04d}.jpg"
            image.write_to_file(str(out / jpeg) + JPEG_OPTIONS)
            made.files[jpeg] = sha256_of(out / jpeg)
        if tiles:
            folder = f"{name}.pages/{number:04d}"
            (out / folder).parent.mkdir(parents=True, exist_ok=True)
            image.dzsave(str(out / folder), layout="iiif3", id="https://preserve.invalid",
                         tile_size=TILE_SIZE, suffix=".jpg" + JPEG_OPTIONS)
            made.pages.append({"tiles": folder, "width": image.width,
                               "height": image.height, "full": _whole(out / folder)})
        if number == 1:
            made.thumbnail = f"{name}.thumb.jpg"
            image.thumbnail_image(THUMBNAIL_WIDTH).write_to_file(
                str(out / made.thumbnail) + JPEG_OPTIONS)
        png.unlink()
    return made


def _whole(tiles: Path) -> str | None:
    """The largest whole-page image among the tiles (`full/W,H/0/default.jpg`): what a
    IIIF canvas is painted with where a viewer does not use the tiles."""
    sizes = [(int(p.parts[-3].split(",")[0]), p.parts[-3])
             for p in (tiles / "full").glob("*/0/default.jpg")]
    return f"full/{max(sizes)[1]}/0/default.jpg" if sizes else None


def _eight_bit(image):
    """An image JPEG can hold: alpha flattened on white, 8 bits, grey or sRGB."""
    if image.hasalpha():
        image = image.flatten(background=[255] * (image.bands - 1))
    if image.interpretation not in ("b-w", "srgb"):
        image = image.colourspace("srgb")
    if image.format != "uchar":
        image = image.cast("uchar") if image.max() <= 255 else (image / 257).cast("uchar")
    return image


MEDIA = {  # choice: (suffix, ffmpeg's arguments, what it is)
    "opus": (".opus", ["-vn", "-c:a", "libopus", "-b:a", "96k"], "Opus 96 kbit/s"),
    "mp3": (".mp3", ["-vn", "-c:a", "libmp3lame", "-q:a", "2"], "MP3 (VBR ~190 kbit/s)"),
    "mp4": (".mp4", ["-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-pix_fmt",
                     "yuv420p", "-c:a", "aac", "-b:a", "128k", "-movflags", "+faststart"],
            "MP4 (H.264, AAC)"),
    "webm": (".webm", ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8",
                       "-crf", "33", "-b:v", "0", "-pix_fmt", "yuv420p", "-c:a", "libopus"],
             "WebM (VP9, Opus)"),
}


def _media(kind: str, choice: str, source: Path, name: str, out: Path) -> Made:
    suffix, args, what = MEDIA[choice]
    copy = f"{name}{suffix}"
    run = run_tool(["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
                    "-i", str(source), *args, str(out / copy)],
                   timeout=TIMEOUT, memory_mb=MEMORY_MB)
    if run.returncode != 0 or not (out / copy).is_file():
        raise ToolFailure(f"ffmpeg could not make the {what} copy: {run.summary()}")
    made = Made({copy: sha256_of(out / copy)}, player="audio" if kind == "sound" else "video",
                tools=[f"ffmpeg {tool_version('ffmpeg')}"], detail=f"{what}")
    if kind == "video":
        made.thumbnail = f"{name}.thumb.jpg"
        run = run_tool(["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
                        "-i", str(out / copy), "-frames:v", "1", "-vf",
                        f"scale={THUMBNAIL_WIDTH}:-2", str(out / made.thumbnail)],
                       timeout=TIMEOUT, memory_mb=2048)
        if run.returncode != 0 or not (out / made.thumbnail).is_file():
            made.thumbnail = None  # a copy without a poster still plays
    return made


def pages_folder(tiles: str) -> str:
    """The folder of a copy's pages (`<name>.pages`), from one page's tile folder."""
    return tiles.rsplit("/", 1)[0]


def sha256_of(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


@functools.cache
def ocrmypdf_version() -> str:
    """Asked once a run (a Python start: the slowest of the versions)."""
    run = run_tool([sys.executable, "-m", "ocrmypdf", "--version"], timeout=60)
    return run.stdout.strip() or "unknown"
