"""Proof for documents: PDF/A approved by pikepdf's validator at the level asked, page
counts, text (pdftotext, or the document's own XML) by a stated measure, pages rendered
and compared pixel by pixel, and every embedded image decoded. See planning/equivalence.py."""

from __future__ import annotations

import hashlib
import logging
import re
import zipfile
from collections import Counter
from pathlib import Path

from preserve.planning.proof import DECODE_MEMORY_MB, CheckFailed, Unproven
from preserve.system import fstree
from preserve.system.tools import output_text, run_tool

# pikepdf's PDF/A validator reads fonts with fontTools, which logs what it finds odd in a
# font ("too much 'hmtx' table data") to stderr: noise in a report, not a finding.
logging.getLogger("fontTools").setLevel(logging.ERROR)

RENDER_DPI = 50
RENDER_FUZZ = 32  # grey levels: anti-aliasing of one glyph edge may differ by a little
ZIP_TEXT = {"word/document.xml": "p", "content.xml": "p"}  # DOCX, ODT: the paragraph tag


def check_pdfa(rule, source: Path, derivative: Path, workdir: Path, timeout: float) -> str:
    import pikepdf
    from pikepdf import pdfa

    level = rule.target.pdfa
    try:
        report = pdfa.validate_written(derivative, level)
    except pikepdf.PdfError as e:
        raise CheckFailed(f"the derivative is not a readable PDF: {e}") from e
    if report.verdict != "pass":
        findings = "; ".join(f"{f.rule}: {f.message}" for f in report.findings[:5])
        kind = CheckFailed if report.verdict == "fail" else Unproven  # "not_checked"
        raise kind(f"not PDF/A-{level} ({report.verdict}): {findings}")
    return f"PDF/A-{level} conformance approved by pikepdf {pikepdf.__version__} (pikepdf.pdfa)"


def _open_pdf(path: Path):
    """pikepdf's PDF at `path`; an encrypted one (a password needed: it cannot be read, so
    it cannot be migrated) or an unreadable one is CheckFailed, named."""
    import pikepdf

    try:
        return pikepdf.open(path)
    except pikepdf.PasswordError as e:
        raise CheckFailed(f"{path.name} is encrypted: a password is needed to read it, so "
                          "nothing can be compared with it") from e
    except pikepdf.PdfError as e:
        raise CheckFailed(f"{path.name} is not a readable PDF: {e}") from e


def _pages(path: Path) -> int:
    with _open_pdf(path) as pdf:
        return len(pdf.pages)


def _same_page_count(source: Path, derivative: Path) -> int:
    want, got = _pages(source), _pages(derivative)
    if want != got:
        raise CheckFailed(f"{got} page(s) in the derivative, {want} in the source")
    return want


def check_pages(rule, source: Path, derivative: Path, workdir: Path, timeout: float) -> str:
    return f"{_same_page_count(source, derivative)} page(s) in both"


def _is_pdf(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(1024).find(b"%PDF-") >= 0


def _pdf_text(path: Path, timeout: float) -> str:
    return output_text(["pdftotext", "-enc", "UTF-8", str(path), "-"], timeout=timeout)


def _document_text(path: Path, workdir: Path, timeout: float) -> str:
    """The text of an office document, read apart from the tool that converted it: the
    XML of DOCX and ODT, else LibreOffice's plain-text export."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            for member, para in ZIP_TEXT.items():
                if member in z.namelist():
                    return _xml_text(z.read(member), para)
    out = workdir / "text"
    out.mkdir(parents=True, exist_ok=True)
    run = run_tool(["soffice", "--headless", "--norestore",
                    f"-env:UserInstallation={(workdir / 'lo-text').as_uri()}", "--convert-to",
                    "txt:Text (encoded):UTF8", "--outdir", str(out), str(path)],
                   timeout=timeout, memory_mb=4096)
    made = list(out.glob("*.txt"))
    if run.returncode != 0 or not made:
        raise CheckFailed(f"the source's text could not be read ({run.summary()})")
    return made[0].read_text(encoding="utf-8", errors="replace")


def _xml_text(data: bytes, paragraph: str) -> str:
    import xml.etree.ElementTree as ET

    parts = []
    for elem in ET.fromstring(data).iter():
        local = elem.tag.rsplit("}", 1)[-1]
        if elem.text and local in ("t", "p", "span", "h", "a", "s"):
            parts.append(elem.text)
        if local in (paragraph, "h", "tab", "br", "s"):
            parts.append(" ")
        if elem.tail:
            parts.append(elem.tail)
    return "".join(parts)


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.casefold())


def check_text(rule, source: Path, derivative: Path, workdir: Path, timeout: float) -> str:
    want = _words(_pdf_text(source, timeout) if _is_pdf(source)
                  else _document_text(source, workdir, timeout))
    got = _words(_pdf_text(derivative, timeout))
    if rule.text_similarity >= 1:
        if want != got:
            first = next((i for i, (x, y) in enumerate(zip(want, got, strict=False)) if x != y),
                         min(len(want), len(got)))
            raise Unproven(f"extracted text differs from word {first + 1} ({len(got)} words "
                           f"in the derivative, {len(want)} in the source; "
                           f"{_share(_common(want, got))} of the words in common)")
        return f"extracted text identical ({len(want)} words)"
    share = _common(want, got)
    if share < rule.text_similarity:
        raise Unproven(f"only {_share(share)} of the source's {len(want)} words are in the "
                       f"derivative's text (the rule asks {_share(rule.text_similarity)})")
    return f"{_share(share)} of the source's {len(want)} words found in the derivative's text"


def _common(want: list[str], got: list[str]) -> float:
    """The share of the source's words found in the derivative's (as a multiset)."""
    return sum((Counter(want) & Counter(got)).values()) / len(want) if want else 1.0


def _share(value: float) -> str:
    """A share in words ('%' would be percent-encoded in PREMIS, as names are); a share
    above nothing is never shown as 0.00."""
    if 0 < value < 0.0001:
        return "under 0.01 per cent"
    return f"{value * 100:.2f} per cent"


RENDER_PAGES = 20  # pages rendered at a time: disk use bounded whatever the page count


def _render(path: Path, out: Path, first: int, last: int, timeout: float) -> list[Path]:
    fstree.rmtree(out, ignore_errors=True)  # the renders of the last pages
    fstree.makedirs(out)
    run = run_tool(["pdftoppm", "-r", str(RENDER_DPI), "-gray", "-f", str(first), "-l",
                    str(last), str(path), str(out / "p")],
                   timeout=timeout, memory_mb=DECODE_MEMORY_MB)
    if run.returncode != 0:
        raise Unproven(f"pdftoppm could not render {path.name}: {run.summary()}")
    return sorted(out.glob("p*.pgm"))


_PGM_FIELD = re.compile(rb"\s*(\S+)")


def _pgm(path: Path) -> tuple[bytes, bytes]:
    data = path.read_bytes()
    fields, at = [], 0
    while len(fields) < 4:  # P5 width height maxval, then one whitespace byte
        m = _PGM_FIELD.match(data, at)
        fields.append(m.group(1))
        at = m.end()
    return b" ".join(fields[1:3]), data[at + 1:]


def check_render(rule, source: Path, derivative: Path, workdir: Path, timeout: float) -> str:
    pages = _same_page_count(source, derivative)
    worst = 0.0
    for first in range(1, pages + 1, RENDER_PAGES):
        last = min(pages, first + RENDER_PAGES - 1)
        before = _render(source, workdir / "render-source", first, last, timeout)
        after = _render(derivative, workdir / "render-derivative", first, last, timeout)
        if len(before) != len(after) or len(before) != last - first + 1:
            raise CheckFailed(f"pages {first}-{last}: {len(after)} rendered from the "
                              f"derivative, {len(before)} from the source")
        for page, (b, a) in enumerate(zip(before, after, strict=True), first):
            (bsize, bpix), (asize, apix) = _pgm(b), _pgm(a)
            if bsize != asize:
                raise CheckFailed(f"page {page} renders at {asize.decode()} in the derivative, "
                                  f"{bsize.decode()} in the source")
            differ = sum(1 for x, y in zip(bpix, apix, strict=False) if abs(x - y) > RENDER_FUZZ)
            share = differ / max(1, len(bpix))
            worst = max(worst, share)
            if share > rule.render_tolerance:
                raise CheckFailed(f"page {page} renders differently: {differ:,} of its "
                                  f"{len(bpix):,} pixels ({_share(share)}) differ by more "
                                  f"than {RENDER_FUZZ} grey levels at {RENDER_DPI} dpi (the "
                                  f"rule allows {_share(rule.render_tolerance)})")
    return (f"{pages} page(s) rendered at {RENDER_DPI} dpi alike "
            f"(at most {_share(worst)} of a page's pixels differ)")


def _page_images(path: Path) -> list[Counter]:
    """Per page, the images it draws (through its forms too) as (width, height, bits,
    colour components, sha256 of the decoded samples), counted: what a reader sees of
    each picture, whatever a writer named or compressed it as. Every filter is decoded,
    JPEG included, so a lossless image re-encoded lossily differs in its samples."""
    import pikepdf

    with _open_pdf(path) as pdf:
        pages = []
        for page in pdf.pages:
            found: Counter = Counter()
            _images_in(page.obj.get("/Resources"), found, set(), pikepdf)
            pages.append(found)
        return pages


def _images_in(resources, found: Counter, seen: set, pikepdf) -> None:
    xobjects = resources.get("/XObject") if isinstance(resources, pikepdf.Dictionary) else None
    if not isinstance(xobjects, pikepdf.Dictionary):
        return
    for _name, xobject in xobjects.items():
        key = xobject.objgen if xobject.is_indirect else id(xobject)
        if key in seen or not isinstance(xobject, pikepdf.Stream):
            continue  # a form that draws itself (case 37), or an image drawn twice
        seen.add(key)
        subtype = xobject.get("/Subtype")
        if subtype == "/Form":
            _images_in(xobject.get("/Resources"), found, seen, pikepdf)
        elif subtype == "/Image":
            try:
                image = pikepdf.PdfImage(xobject)
                samples = xobject.read_bytes(pikepdf.StreamDecodeLevel.all)
                digest = hashlib.sha256(samples).hexdigest()
                found[(image.width, image.height, image.bits_per_component,
                       _components(image), digest)] += 1
            except (pikepdf.PdfError, NotImplementedError, ValueError) as e:
                raise Unproven(f"an image ({xobject.get('/Width')}x"
                                  f"{xobject.get('/Height')}) cannot be decoded: {e}") from e


def _components(image) -> int | str:
    try:
        return len(image.mode) if image.mode != "1" else 1
    except NotImplementedError:  # an ICC-based, indexed or separation space: named
        return str(image.colorspace)


def check_images(rule, source: Path, derivative: Path, workdir: Path, timeout: float) -> str:
    """Every page draws the same images in both: count, size, depth, colour components
    and decoded samples (red-team 2026-12 case 44: Ghostscript re-encoded a lossless
    photo as JPEG, 94 per cent of its samples changed, and a 50 dpi grey render could not
    see it). An image converted to another colour space counts as changed: unproven."""
    before, after = _page_images(source), _page_images(derivative)
    if len(before) != len(after):
        raise CheckFailed(f"{len(after)} page(s) in the derivative, {len(before)} in the "
                          "source")
    for page, (b, a) in enumerate(zip(before, after, strict=True), 1):
        if b != a:
            lost = b - a
            w, h, bits, comps, _ = next(iter(lost or (a - b)))
            raise CheckFailed(f"page {page}: an image of {w}x{h} ({bits} bits, {comps} "
                              "components) is not in the derivative as it is in the source "
                              "(its decoded samples, size or colours differ)" if lost else
                              f"page {page}: the derivative has an image of {w}x{h} the "
                              "source does not")
    total = sum(sum(p.values()) for p in before)
    return (f"{total} embedded image(s) on {len(before)} page(s) identical in size, colours "
            "and decoded samples")
