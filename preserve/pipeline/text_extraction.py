"""The text of one file, by the tool its format needs (issue 27).

- PDF: pdftotext (poppler), page by page (its pages end with a form feed); a page with
  no text layer is rendered at 300 dpi (pdftoppm) and read by OCR (pipeline/ocr.py);
- scans (TIFF, JPEG, PNG, JPEG 2000, GIF, BMP, WebP): OCR, every frame a page;
- office documents: LibreOffice's text export (spreadsheets as CSV, presentations
  through PDF), each run with a profile of its own;
- HTML, XML and plain text: decoded by their declared encoding, else UTF-8, UTF-16 (a
  byte order mark), Windows-1251 (Cyrillic), Latin-1; HTML and XML reduced to their text.

Text is returned a page at a time; OCR pages carry their ALTO and hOCR. Tools run
sandboxed (system/tools.run_tool: a timeout, a memory limit, no tool left behind).
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from xml.parsers import expat

from preserve.errors import ToolFailure
from preserve.pipeline.ocr import OcrPage, ocr_page
from preserve.system.tools import run_tool, tool_version

PDF_TIMEOUT = 600
OFFICE_TIMEOUT = 600
OFFICE_MEMORY_MB = 4096
RENDER_DPI = 300
# Fewer letters than this on a PDF page: the page is a scan, read by OCR.
SCANNED_PAGE_LETTERS = 10
IMAGE_MIMES = {"image/tiff", "image/jpeg", "image/png", "image/jp2", "image/jpx",
               "image/gif", "image/bmp", "image/x-ms-bmp", "image/webp"}
OFFICE_TEXT = {"application/msword", "application/rtf", "text/rtf",
               "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
               "application/vnd.oasis.opendocument.text"}
OFFICE_SHEETS = {"application/vnd.ms-excel", "application/vnd.oasis.opendocument.spreadsheet",
                 "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}
OFFICE_SLIDES = {"application/vnd.ms-powerpoint",
                 "application/vnd.oasis.opendocument.presentation",
                 "application/vnd.openxmlformats-officedocument.presentationml.presentation"}


@dataclass
class Extracted:
    pages: list[str]  # text of page 1, 2, ... (one page for unpaged formats)
    method: str  # how: "text layer", "OCR", "text layer and OCR", "decoded", "LibreOffice"
    tools: list[tuple[str, str]] = field(default_factory=list)  # (tool, version)
    ocr: dict[int, OcrPage] = field(default_factory=dict)  # page number -> its OCR

    @property
    def text(self) -> str:
        """The pages as one text, a form feed after each (pdftotext's convention)."""
        return "".join(page + "\f" for page in self.pages)


def text_kind(mime: str | None, path: str = "") -> str | None:
    """How a file of this MIME type gives its text, or None (no text to extract)."""
    mime = (mime or "").split(";")[0].strip().lower()
    if mime == "application/pdf":
        return "pdf"
    if mime in IMAGE_MIMES:
        return "image"
    if mime in OFFICE_TEXT | OFFICE_SHEETS | OFFICE_SLIDES:
        return "office"
    if mime in ("text/html", "application/xhtml+xml"):
        return "html"
    if mime in ("text/xml", "application/xml") or (mime.endswith("+xml")
                                                   and mime != "image/svg+xml"):
        return "xml"
    if mime.startswith("text/"):
        return "text"
    return None


def extract(kind: str, source: Path, workdir: Path, mime: str = "",
            languages: list[str] | None = None) -> Extracted:
    """The text of `source` (a private copy: tools never run inside storage)."""
    if kind == "pdf":
        return _pdf(source, workdir, languages)
    if kind == "image":
        return _image(source, workdir, languages)
    if kind == "office":
        return _office(source, workdir, mime)
    data = source.read_bytes()
    text = decode(data, declared_encoding(data, kind))
    if kind == "html":
        text = html_text(text)
    elif kind == "xml":
        text = xml_text(data) or text
    pages = text.split("\f")  # a form feed starts a new page, as in pdftotext's text
    return Extracted(pages[:-1] if len(pages) > 1 and not pages[-1].strip() else pages,
                     "decoded")


def _pdf(source: Path, workdir: Path, languages: list[str] | None) -> Extracted:
    out = workdir / "pdftotext.txt"
    run = run_tool(["pdftotext", "-enc", "UTF-8", str(source), str(out)],
                   timeout=PDF_TIMEOUT, memory_mb=2048)
    if run.returncode != 0 or not out.exists():
        raise ToolFailure(f"pdftotext could not read the PDF: {run.summary()}")
    pages = out.read_text(encoding="utf-8", errors="replace").split("\f")[:-1] or [""]
    out.unlink()
    tools = [("pdftotext", tool_version("pdftotext") or "unknown")]
    ocr: dict[int, OcrPage] = {}
    for number, text in enumerate(pages, 1):
        if sum(c.isalpha() for c in text) >= SCANNED_PAGE_LETTERS:
            continue
        image = render_page(source, number, workdir)
        ocr[number] = ocr_page(image, workdir, languages, dpi=RENDER_DPI)
        pages[number - 1] = ocr[number].text
        image.unlink()
    if ocr:
        tools += [("pdftoppm", tool_version("pdftoppm") or "unknown"), *ocr[min(ocr)].tools]
    method = "OCR" if len(ocr) == len(pages) else "text layer and OCR" if ocr else "text layer"
    return Extracted(pages, method, tools, ocr)


def render_page(source: Path, number: int, workdir: Path) -> Path:
    """Page `number` of a PDF as a grey PNG at RENDER_DPI, for OCR (sandboxed pdftoppm)."""
    prefix = workdir / f"page-{number}"
    run = run_tool(["pdftoppm", "-r", str(RENDER_DPI), "-gray", "-png", "-singlefile",
                    "-f", str(number), "-l", str(number), str(source), str(prefix)],
                   timeout=PDF_TIMEOUT, memory_mb=2048)
    image = prefix.with_suffix(".png")
    if run.returncode != 0 or not image.exists():
        raise ToolFailure(f"pdftoppm could not render page {number}: {run.summary()}")
    return image


def split_frames(source: Path, folder: Path, timeout: int) -> list[Path]:
    """Every frame of an image as a PNG file, in order (ImageMagick, sandboxed: it reads
    more formats than tesseract or libvips, JPEG 2000 and BMP among them)."""
    folder.mkdir(exist_ok=True)
    run = run_tool(["convert", str(source), "+adjoin", str(folder / "frame-%04d.png")],
                   timeout=timeout, memory_mb=2048)
    made = sorted(folder.iterdir())
    if run.returncode != 0 or not made:
        raise ToolFailure(f"ImageMagick could not read the image: {run.summary()}")
    return made


def _image(source: Path, workdir: Path, languages: list[str] | None) -> Extracted:
    """Every frame of the image a page: split to PNG by ImageMagick (sandboxed; it reads
    more formats than tesseract, JPEG 2000 among them), each read by OCR."""
    made = split_frames(source, workdir / "frames", PDF_TIMEOUT)
    pages, ocr = [], {}
    for number, image in enumerate(made, 1):
        ocr[number] = ocr_page(image, workdir, languages)
        pages.append(ocr[number].text)
        image.unlink()
    tools = [("convert", tool_version("convert") or "unknown"), *ocr[1].tools]
    return Extracted(pages, "OCR", list(dict.fromkeys(tools)), ocr)


def _office(source: Path, workdir: Path, mime: str) -> Extracted:
    if tool_version("soffice") is None:
        raise ToolFailure("LibreOffice (soffice) is not installed: office documents "
                          "cannot give their text", hint="scripts/setup.sh installs it")
    mime = mime.split(";")[0].strip().lower()
    target = ("csv:Text - txt - csv (StarCalc):44,34,76" if mime in OFFICE_SHEETS
              else "pdf" if mime in OFFICE_SLIDES else "txt:Text (encoded):UTF8")
    outdir = workdir / "office"
    outdir.mkdir(exist_ok=True)
    profile = (workdir / "profile").resolve().as_uri()
    run = run_tool(["soffice", "--headless", "--norestore", f"-env:UserInstallation={profile}",
                    "--convert-to", target, "--outdir", str(outdir), str(source)],
                   timeout=OFFICE_TIMEOUT, memory_mb=OFFICE_MEMORY_MB)
    made = sorted(outdir.iterdir())
    if run.returncode != 0 or not made:
        raise ToolFailure(f"LibreOffice could not export the text: {run.summary()}")
    tools = [("soffice", tool_version("soffice") or "unknown")]
    if target == "pdf":
        done = _pdf(made[0], workdir, None)
        return Extracted(done.pages, "LibreOffice", tools + done.tools, done.ocr)
    text = made[0].read_bytes().decode("utf-8", errors="replace").lstrip("\ufeff")
    return Extracted([text], "LibreOffice", tools)


def declared_encoding(data: bytes, kind: str) -> str | None:
    """The encoding a document names for itself: an XML declaration, an HTML meta tag."""
    head = data[:2048].decode("ascii", errors="replace")
    pattern = (r"<\?xml[^>]*encoding=[\"']([\w.:-]+)" if kind == "xml"
               else r"<meta[^>]*charset=[\"']?([\w.:-]+)")
    m = re.search(pattern, head, re.IGNORECASE)
    if not m:
        return None
    try:
        return codecs.lookup(m.group(1)).name
    except LookupError:
        return None


def decode(data: bytes, declared: str | None = None) -> str:
    """Bytes as text: the declared encoding, a byte order mark, UTF-8, Windows-1251 when
    the bytes look Cyrillic, else Latin-1 (which never fails)."""
    if data.startswith(codecs.BOM_UTF8):
        return data[3:].decode("utf-8", errors="replace")
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return data.decode("utf-16", errors="replace")
    for encoding in filter(None, (declared, "utf-8")):
        try:
            return data.decode(encoding)
        except (UnicodeDecodeError, LookupError):
            continue
    high = sum(1 for b in data if b >= 0xC0)  # Cyrillic letters in Windows-1251
    ascii_letters = sum(1 for b in data if 0x41 <= b <= 0x5A or 0x61 <= b <= 0x7A)
    cyrillic = high > 0.3 * (high + ascii_letters)  # Latin-1 text is mostly ASCII letters
    return data.decode("cp1251" if cyrillic else "latin-1", errors="replace")


class _HtmlText(HTMLParser):
    SKIP = {"script", "style", "noscript", "template"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag, attrs) -> None:
        self.skipping += tag in self.SKIP
        if tag in ("p", "br", "div", "li", "tr", "h1", "h2", "h3", "h4", "title"):
            self.parts.append("\n")

    def handle_endtag(self, tag) -> None:
        self.skipping -= tag in self.SKIP and self.skipping > 0

    def handle_data(self, data) -> None:
        if not self.skipping:
            self.parts.append(data)


def html_text(html: str) -> str:
    parser = _HtmlText()
    parser.feed(html)
    parser.close()
    return re.sub(r"\n\s*\n+", "\n\n", "".join(parser.parts)).strip()


def xml_text(data: bytes) -> str | None:
    """An XML document's character data (None when it is not well-formed)."""
    parts: list[str] = []
    parser = expat.ParserCreate()
    parser.CharacterDataHandler = parts.append
    parser.EndElementHandler = lambda _name: parts.append("\n")  # elements are words apart
    try:
        parser.Parse(data, True)
    except expat.ExpatError:
        return None
    return re.sub(r"[ \t]*\n\s*", "\n", "".join(parts)).strip()
