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

from pathlib import Path

from preserve.domain.formats import FormatRule
from preserve.planning.document_checks import check_images, check_pages, check_pdfa, check_render, check_text
from preserve.planning.media_checks import check_frames, check_pixels, check_samples
from preserve.planning.proof import Proof


def verify(rule: FormatRule, source: Path, derivative: Path, workdir: Path, *,
           timeout: float) -> Proof:
    """Run every check the rule asks for; the first that fails raises CheckFailed."""
    proved = []
    for check in rule.checks:
        proved.append(CHECKS[check](rule, source, derivative, workdir, timeout))
    return Proof(proved)


CHECKS = {"pixels": check_pixels, "samples": check_samples, "frames": check_frames,
          "pdfa": check_pdfa, "pages": check_pages, "text": check_text, "render": check_render,
          "images": check_images}
