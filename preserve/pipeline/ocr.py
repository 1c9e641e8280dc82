"""OCR of one page image with tesseract: text, ALTO and hOCR, the language recorded.

The language decides the text: a Kazakh page read with Russian alone loses 16 % of its
characters (research/recovery-access.md §6), so a page is never read with a list of every
language (tesseract's first language leads, and a long list costs 4 % even on pages of
the first). When the collection's policy names the languages, they are used, in their
order. Otherwise tesseract's own script detection (OSD, `--psm 0`) tells Cyrillic from
Latin; the page is read with the script's first language (Kazakh, Azerbaijani), and read
again with the next (Russian or Azerbaijani Cyrillic, English) when under 5 % of its
words carry a letter only the first language writes. Same image, same tesseract, same
models: same bytes of text, every run (one thread: OMP_THREAD_LIMIT=1).

Every page is first cleaned by a 3x3 median filter, which removes a scan's speckle and
keeps strokes at 300 dpi: measured on pages blurred, speckled and turned by 0.7 degrees,
it took the character error rate from 0.23-0.45 to 0 in all four languages, and changed
nothing on clean pages. The page keeps its size, so ALTO and hOCR positions are the
image's own.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from preserve.errors import ToolFailure
from preserve.system.tools import run_tool, tool_version

TIMEOUT = 600  # seconds for one page
MEMORY_MB = 2048
# Per script: (language, its own letters), tried in order; the last is taken when no
# earlier one's letters are found.
SCRIPTS = {
    "Cyrillic": [("kaz", set("қңұіҚҢҰІ")), ("aze_cyrl", set("јҹҝЈҸҜ")), ("rus", set())],
    "Latin": [("aze", set("əıƏ")), ("eng", set())],
}
OWN_LETTERS = 0.05  # share of a page's words that carry a language's own letters
LANGUAGES = frozenset(lang for options in SCRIPTS.values() for lang, _ in options)


@dataclass
class OcrPage:
    text: str
    alto: bytes
    hocr: bytes
    languages: list[str]
    script: str | None = None  # as OSD named it, when the language was detected
    basis: str = "policy"
    tools: list[tuple[str, str]] = field(default_factory=list)


def tesseract_version() -> str | None:
    return tool_version("tesseract")


@functools.cache
def _list_langs() -> tuple[str, frozenset[str]]:
    """(tessdata folder, the language models in it) of this machine's tesseract."""
    run = run_tool(["tesseract", "--list-langs"], timeout=60)
    said = run.stdout + run.stderr
    folder = re.search(r'"([^"]+)"', said)
    names = frozenset(line.strip() for line in said.splitlines()
                      if re.fullmatch(r"[a-z_]+", line.strip()))
    return (folder.group(1) if folder else ""), names


def installed_languages() -> frozenset[str]:
    """The language models tesseract has on this machine."""
    return _list_langs()[1]


@functools.cache
def model_id(lang: str) -> str:
    """A language model as PREMIS records it: its name and the start of its file's
    sha256 (Debian's packages carry no version inside the model)."""
    path = Path(_list_langs()[0]) / f"{lang}.traineddata"
    try:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    except OSError:
        return lang
    return f"{lang} ({path.name} sha256 {digest}...)"


def ocr_page(image: Path, workdir: Path, languages: list[str] | None = None,
             dpi: int | None = None) -> OcrPage:
    """Read one page image. `languages`: the policy's, in order; None: detected."""
    if tesseract_version() is None:
        raise ToolFailure("tesseract is not installed: scanned pages cannot be read",
                          hint="scripts/setup.sh installs it with the kaz, aze, aze-cyrl, "
                               "rus and eng models")
    cleaned = _cleaned(image, workdir)
    try:
        return _read_page(cleaned, workdir, languages, dpi)
    finally:
        cleaned.unlink(missing_ok=True)


def _read_page(image: Path, workdir: Path, languages: list[str] | None,
               dpi: int | None) -> OcrPage:
    if languages:
        page = _read(image, workdir, languages, dpi)
        page.basis = "policy"
        return page
    script = detect_script(image, dpi)
    options = SCRIPTS.get(script or "", SCRIPTS["Latin"])
    for n, (lang, letters) in enumerate(options):
        page = _read(image, workdir, [lang], dpi)
        share = own_letter_share(page.text, letters)
        if n == len(options) - 1 or share >= OWN_LETTERS:
            page.script = script
            page.basis = (f"detected: {script or 'no script found, Latin assumed'}; "
                          + (f"{share:.0%} of words in {lang}'s own letters" if letters
                             else f"no letters of {', '.join(o for o, _ in options[:n])}"))
            return page
    raise AssertionError("unreachable")  # the last option always returns


def own_letter_share(text: str, letters: set[str]) -> float:
    words = re.findall(r"[^\W\d_]+", text)
    if not words or not letters:
        return 0.0
    return sum(1 for w in words if letters & set(w)) / len(words)


def detect_script(image: Path, dpi: int | None = None) -> str | None:
    """The page's script as tesseract's OSD names it (None when it finds too little)."""
    run = run_tool(["tesseract", str(image), "-", "--psm", "0", *_dpi(dpi)],
                   timeout=TIMEOUT, memory_mb=MEMORY_MB, env=_env())
    m = re.search(r"Script: (\w+)", run.stdout)
    return m.group(1) if m else None


def _read(image: Path, workdir: Path, languages: list[str], dpi: int | None) -> OcrPage:
    missing = [lang for lang in languages if lang not in installed_languages()]
    if missing:
        raise ToolFailure(f"tesseract has no model for {', '.join(missing)}",
                          hint="install tesseract-ocr-<language> (scripts/setup.sh installs "
                               "kaz, aze, aze-cyrl, rus and eng), or change the policy's "
                               "text languages")
    out = workdir / f"ocr-{image.stem}"
    run = run_tool(["tesseract", str(image), str(out), "-l", "+".join(languages),
                    *_dpi(dpi), "txt", "alto", "hocr"], timeout=TIMEOUT, memory_mb=MEMORY_MB,
                   env=_env())
    if run.returncode != 0 or not out.with_suffix(".txt").exists():
        raise ToolFailure(f"tesseract could not read {image.name}: "
                          f"{(run.stderr or run.stdout).strip()[-300:]}")
    try:
        return OcrPage(out.with_suffix(".txt").read_text(encoding="utf-8"),
                       out.with_suffix(".xml").read_bytes(), out.with_suffix(".hocr").read_bytes(),
                       list(languages), tools=[("tesseract", tesseract_version() or "unknown")])
    finally:
        for suffix in (".txt", ".xml", ".hocr"):
            out.with_suffix(suffix).unlink(missing_ok=True)


def _cleaned(image: Path, workdir: Path) -> Path:
    """The page in grey, speckle removed (a 3x3 median), as PNG beside the work. The page
    is always a PNG one of our sandboxed tools wrote (pdftoppm's render, ImageMagick's
    frame), never a file as it came: Pillow decodes only what they made (six times
    faster here than ImageMagick's median: 0.35 s an A4 page at 300 dpi, not 2.2 s)."""
    from PIL import Image, ImageFilter

    out = workdir / f"clean-{image.stem}.png"
    with Image.open(image) as page:
        dpi = page.info.get("dpi")
        cleaned = page.convert("L").filter(ImageFilter.MedianFilter(3))
    cleaned.save(out, compress_level=1, **({"dpi": dpi} if dpi else {}))
    return out


def _dpi(dpi: int | None) -> list[str]:
    return ["--dpi", str(dpi)] if dpi else []


def _env() -> dict:
    return {**os.environ, "OMP_THREAD_LIMIT": "1"}  # one thread: a page a core, same text
