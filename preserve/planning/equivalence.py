"""Proof that a derivative holds what its source held, before it is accepted.

Each check decodes both files with a tool that keeps the source's precision and
compares what comes out exactly (images, audio, video) or by a stated measure
(text of office documents, rendered pages). A tool's exit status is never taken
for proof: Archivematica's "verification" is `test -s output`, and three of its
default commands lose content that such a test cannot see (research/migration.md
§1.4, §4). Each check returns what it proved, or raises CheckFailed saying what
differs.

- pixels: ImageMagick decodes both at the deeper of their two depths (`-depth 16`
  keeps 16-bit images; Pillow would read them as 8-bit) and the raw RGBA bytes are
  hashed; dimensions, depth, channels, colour space and type and frame count are
  compared first.
- samples: ffmpeg decodes each audio stream to PCM of the source's own sample
  format (`-c:a pcm_s24le` for 24 bits: the md5 muxer's default is 16-bit and
  would miss the loss); rate and channels are compared first.
- frames: ffmpeg's framemd5 of every video frame, in the source's pixel format.
- pdfa: pikepdf's allowlist validator approves the derivative at the level asked.
- pages, text, render: pikepdf page counts; pdftotext (or the document's own XML)
  for text; pdftoppm renders of each page, compared pixel by pixel.
"""

from __future__ import annotations

import array
import hashlib
import json
import logging
import re
import zipfile
from collections import Counter
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from preserve.domain.formats import FormatRule
from preserve.system import fstree
from preserve.system.tools import find_tool, hash_output, output_text, run_tool

# pikepdf's PDF/A validator reads fonts with fontTools, which logs what it finds odd in a
# font ("too much 'hmtx' table data") to stderr: noise in a report, not a finding.
logging.getLogger("fontTools").setLevel(logging.ERROR)

DECODE_MEMORY_MB = 4096
RENDER_DPI = 50
RENDER_FUZZ = 32  # grey levels: anti-aliasing of one glyph edge may differ by a little
ZIP_TEXT = {"word/document.xml": "p", "content.xml": "p"}  # DOCX, ODT: the paragraph tag


class CheckFailed(Exception):
    """The derivative does not hold what the source held (the message says what differs)."""

    unproven = False


class Unproven(CheckFailed):
    """The check could not decide: its tool cannot read the file, or sees it in a way that
    may differ without the content differing (a validator that leaves an object
    unchecked, text extraction). The derivative is not kept, but it is not known to be
    wrong either: migrate, its events and `formats` say "could not be proven", apart from
    "failed" (red-team 2026-12: 3 of 4 real PDFs)."""

    unproven = True


@dataclass
class Proof:
    checks: list[str]

    def summary(self) -> str:
        return "; ".join(self.checks)


def verify(rule: FormatRule, source: Path, derivative: Path, workdir: Path, *,
           timeout: float) -> Proof:
    """Run every check the rule asks for; the first that fails raises CheckFailed."""
    proved = []
    for check in rule.checks:
        proved.append(CHECKS[check](rule, source, derivative, workdir, timeout))
    return Proof(proved)


# -- images ----------------------------------------------------------------------------------

def _image_frames(path: Path, timeout: float) -> list[tuple[str, ...]]:
    """Per frame: width, height, depth, channels, colour space, type, then the canvas
    (page) it sits on, its offset on it, and the format ImageMagick read."""
    text = output_text(["identify", "-format", "%w %h %z %[channels] %[colorspace] %[type] "
                        "%W %H %X %Y %m\n", str(path)],
                       timeout=timeout, memory_mb=DECODE_MEMORY_MB)
    return [tuple(line.split()) for line in text.splitlines() if line.strip()]


def _on_canvas(frames: list[tuple[str, ...]]) -> bool:
    """Whether a reader composes the frames on a canvas (a GIF's logical screen, with
    offsets and disposal), rather than showing each frame as it is stored."""
    return any(f[10] == "GIF" or (f[6], f[7], f[8], f[9]) not in ((f[0], f[1], "+0", "+0"),
                                                                    ("0", "0", "+0", "+0"))
               for f in frames)


def _pixels(path: Path, depth: str, timeout: float, *, shown: bool = False) -> tuple[str, int]:
    """sha256 of the decoded RGBA samples; `shown`: of every frame as a reader shows it,
    composed on its canvas (ImageMagick's -coalesce)."""
    compose = ["-coalesce", "+repage"] if shown else ["+repage"]
    return hash_output(["convert", str(path), *compose, "-depth", depth, "-endian", "LSB",
                        "rgba:-"], timeout=timeout, memory_mb=DECODE_MEMORY_MB)


def check_pixels(rule, source: Path, derivative: Path, workdir: Path, timeout: float) -> str:
    """The derivative's frames, as any reader decodes them, hold the samples the source's
    frames show: a GIF's frames composed on its logical screen (offsets, disposal), and
    no canvas or offset in the derivative that only ImageMagick's private PNG chunks keep
    (red-team 2026-12 case 58: a 10x10 frame at +50+50 of a 100x100 screen became a
    10x10 PNG, and raw frame pixels were "identical")."""
    before, after = _image_frames(source, timeout), _image_frames(derivative, timeout)
    if len(before) != len(after):
        raise CheckFailed(f"the source has {len(before)} frame(s), the derivative {len(after)}")
    for i, a in enumerate(after):
        if (a[6], a[7], a[8], a[9]) not in ((a[0], a[1], "+0", "+0"), ("0", "0", "+0", "+0")):
            raise CheckFailed(f"frame {i} of the derivative is a {a[0]}x{a[1]} region at "
                              f"{a[8]}{a[9]} of a {a[6]}x{a[7]} canvas, which most readers "
                              "do not show")
    shown = _on_canvas(before)
    if shown:  # what a reader shows of the source: each frame the size of the canvas
        before = [(f[6], f[7], *f[2:]) for f in before]
    names = ("width", "height", "bit depth", "channels", "colour space", "colour type")
    for i, (b, a) in enumerate(zip(before, after, strict=True)):
        for name, x, y in zip(names, b, a, strict=False):
            if name == "bit depth" and int(y) > int(x):
                continue  # a 4-bit palette stored as 8 bits: compared at 8 bits below
            if x != y:
                raise CheckFailed(f"frame {i}: {name} is {y} in the derivative, {x} in the "
                                  "source")
    # decoded at the deeper of the two: a source's values scale up exactly, and no
    # difference in the derivative's extra bits can hide in a rounding down
    depth = str(max(int(f[2]) for f in before + after))
    want, size = _pixels(source, depth, timeout, shown=shown)
    got, _ = _pixels(derivative, depth, timeout)
    if want != got:
        raise CheckFailed(f"decoded pixels differ at {depth} bits per channel (sha256 {got[:16]}… "
                          f"where the source gives {want[:16]}…)")
    w, h, source_depth, channels, space = before[0][:5]
    return (f"pixels identical: {len(before)} frame(s) of {w}x{h}"
            + (" as shown on the canvas" if shown else "") + f", {source_depth} bits, "
            f"{channels}, {space} (sha256 of {size} RGBA bytes decoded at {depth} bits "
            f"{want[:16]}…)")


# -- audio and video -------------------------------------------------------------------------

def _streams(path: Path, kind: str, timeout: float) -> list[dict]:
    text = output_text(["ffprobe", "-v", "error", "-select_streams", kind, "-show_entries",
                        "stream=codec_name,sample_rate,channels,sample_fmt,bits_per_sample,"
                        "bits_per_raw_sample,width,height,pix_fmt", "-of", "json", str(path)],
                       timeout=timeout)
    try:
        return json.loads(text).get("streams", [])
    except ValueError as e:
        raise CheckFailed(f"ffprobe could not read {path.name}") from e


def _bits(stream: dict) -> int:
    for key in ("bits_per_raw_sample", "bits_per_sample"):
        value = int(stream.get(key) or 0)
        if value:
            return value
    fmt = (stream.get("sample_fmt") or "").rstrip("p")
    return {"u8": 8, "s16": 16, "s32": 32, "s64": 64, "flt": 32, "dbl": 64}.get(fmt, 0)


def _pcm_codec(stream: dict) -> str:
    """The PCM format that holds every bit of the source's samples."""
    fmt = (stream.get("sample_fmt") or "").rstrip("p")
    if fmt == "flt":
        return "pcm_f32le"
    if fmt == "dbl":
        return "pcm_f64le"
    bits = _bits(stream)
    return "pcm_s16le" if bits <= 16 else "pcm_s24le" if bits <= 24 else "pcm_s32le"


def _audio_md5(path: Path, index: int, codec: str, timeout: float) -> str:
    text = output_text(["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-map",
                        f"0:a:{index}", "-c:a", codec, "-f", "md5", "-"],
                       timeout=timeout, memory_mb=DECODE_MEMORY_MB)
    return text.strip().removeprefix("MD5=")


def _paired_streams(source: Path, derivative: Path, kind: str, same: tuple[str, ...],
                    timeout: float, *, required: bool = True) -> list[tuple[dict, dict]]:
    """The source's and the derivative's streams of a kind ("a", "v"), paired in order,
    once their number and the properties `same` are found equal (none in either is a
    failure only where `required`)."""
    name = {"a": "audio", "v": "video"}[kind]
    before, after = _streams(source, kind, timeout), _streams(derivative, kind, timeout)
    if not before and required:
        raise CheckFailed(f"the source has no {name} stream to compare")
    if len(before) != len(after):
        raise CheckFailed(f"the source has {len(before)} {name} stream(s), the derivative "
                          f"{len(after)}")
    for i, (b, a) in enumerate(zip(before, after, strict=True)):
        for key in same:
            if str(b.get(key)) != str(a.get(key)):
                raise CheckFailed(f"{name} stream {i}: {key} is {a.get(key)} in the "
                                  f"derivative, {b.get(key)} in the source")
    return list(zip(before, after, strict=True))


AUDIO_SAME = ("sample_rate", "channels")


def check_samples(rule, source: Path, derivative: Path, workdir: Path, timeout: float) -> str:
    return _same_samples(_paired_streams(source, derivative, "a", AUDIO_SAME, timeout),
                         source, derivative, timeout)


def _same_samples(pairs: list[tuple[dict, dict]], source: Path, derivative: Path,
                  timeout: float) -> str:
    proved = []
    for i, (b, a) in enumerate(pairs):
        if _bits(a) < _bits(b):
            raise CheckFailed(f"audio stream {i}: {_bits(a)} bits per sample in the derivative, "
                              f"{_bits(b)} in the source")
        codec = _pcm_codec(b)
        want = _audio_md5(source, i, codec, timeout)
        got = _audio_md5(derivative, i, codec, timeout)
        if want != got:
            raise CheckFailed(f"audio stream {i}: decoded samples differ as {codec} (md5 {got} "
                              f"where the source gives {want})")
        proved.append(f"stream {i}: {b.get('sample_rate')} Hz, {b.get('channels')} channel(s), "
                      f"{_bits(b)} bits, samples identical as {codec} (md5 {want})")
    if derivative.suffix.lower() == ".flac" and find_tool("flac"):
        run = run_tool(["flac", "-t", "-s", str(derivative)], timeout=timeout)
        if run.returncode != 0:
            raise CheckFailed(f"flac -t rejects the derivative: {run.summary()}")
        proved.append("FLAC's own MD5 of the samples checked (flac -t)")
    return "audio " + "; ".join(proved)


FRAME_TIME_SLACK = 0.001  # seconds: containers keep times in their own units (ms in MKV)


def _frames_digest(path: Path, index: int, pix_fmt: str, timeout: float
                   ) -> tuple[str, int, array.array]:
    """sha256 over each decoded frame's size and md5 (framemd5), in order; frame count;
    and when each frame is shown, in seconds from the first (what a player shows is the
    frames and their timing: a derivative at another frame rate holds the same frames
    but is not the same film)."""
    digest, frames, times = hashlib.sha256(), 0, array.array("d")
    text = output_text(["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-map",
                        f"0:v:{index}", "-fps_mode", "passthrough", "-pix_fmt", pix_fmt,
                        "-f", "framemd5", "-"], timeout=timeout, memory_mb=DECODE_MEMORY_MB)
    base = Fraction(1)
    for line in text.splitlines():
        if line.startswith("#tb"):  # "#tb 0: 1/25"
            base = Fraction(line.split(":", 1)[1].strip())
        if line.startswith("#") or not line.strip():
            continue
        fields = [f.strip() for f in line.split(",")]
        digest.update(f"{fields[-2]},{fields[-1]}\n".encode())
        times.append(float(int(fields[2]) * base))  # the presentation time
        frames += 1
    first = times[0] if times else 0.0
    return digest.hexdigest(), frames, array.array("d", (t - first for t in times))


def check_frames(rule, source: Path, derivative: Path, workdir: Path, timeout: float) -> str:
    proved = []
    for i, (b, _a) in enumerate(_paired_streams(source, derivative, "v",
                                                ("width", "height", "pix_fmt"), timeout)):
        want, n, when = _frames_digest(source, i, b["pix_fmt"], timeout)
        got, m, shown = _frames_digest(derivative, i, b["pix_fmt"], timeout)
        if n != m:
            raise CheckFailed(f"video stream {i}: {m} frames in the derivative, {n} in the source")
        if want != got:
            raise CheckFailed(f"video stream {i}: decoded frames differ (framemd5)")
        late = next((k for k, (x, y) in enumerate(zip(when, shown, strict=True))
                     if abs(x - y) > FRAME_TIME_SLACK), None)
        if late is not None:
            raise CheckFailed(f"video stream {i}: frame {late + 1} is shown at "
                              f"{shown[late]:.3f} s in the derivative, {when[late]:.3f} s in "
                              "the source (the timing differs)")
        proved.append(f"video stream {i}: {n} frames of {b['width']}x{b['height']} "
                      f"{b['pix_fmt']} identical (framemd5), each shown at its time")
    audio = _paired_streams(source, derivative, "a", AUDIO_SAME, timeout, required=False)
    if audio:
        proved.append(_same_samples(audio, source, derivative, timeout))
    return "; ".join(proved)


# -- documents -------------------------------------------------------------------------------

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


CHECKS = {"pixels": check_pixels, "samples": check_samples, "frames": check_frames,
          "pdfa": check_pdfa, "pages": check_pages, "text": check_text, "render": check_render,
          "images": check_images}
