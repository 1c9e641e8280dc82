"""Where an AIP keeps the text of its files (issue 27): the layout `extract` writes, the
index reads and access copies look at, named once.

`metadata/text/<payload path without data/>.txt`: a file's text, a form feed after each
page; `….page-NNNN.alto.xml` and `….page-NNNN.hocr`: one OCR page's ALTO and hOCR.
"""

from __future__ import annotations

TEXT_PREFIX = "metadata/text/"
TEXT = ".txt"
ALTO = ".alto.xml"
HOCR = ".hocr"


def text_path(payload: str, page: int | None = None, suffix: str = TEXT) -> str:
    """Where the AIP keeps a payload file's text (or one page's ALTO or hOCR)."""
    rel = payload[len("data/"):]
    return f"{TEXT_PREFIX}{rel}" + (f".page-{page:04d}{suffix}" if page else suffix)


def payload_of(text: str) -> str | None:
    """The payload file a kept text file belongs to (None for an ALTO or hOCR page)."""
    if not text.startswith(TEXT_PREFIX) or not text.endswith(TEXT) or ".page-" in text[-20:]:
        return None
    return "data/" + text[len(TEXT_PREFIX):-len(TEXT)]


def ocr_page_base(path: str) -> str | None:
    """For an ALTO page, the text file's path without `.txt` (whose page it is)."""
    return path[:path.rindex(".page-")] if path.endswith(ALTO) and ".page-" in path else None
