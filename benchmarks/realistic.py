"""A realistic ingest corpus: what an archive receives, in real formats, no two files alike.

Deterministic (one seed per file) and made once into benchmarks/work/corpus-real:
raster images made by ImageMagick from seeded plasma (PNG, JPEG, TIFF, BMP, GIF),
PDFs with pages of text (pikepdf), WAV (the wave module, tone and noise), UTF-8
text in Latin, Cyrillic (Kazakh) and Azerbaijani scripts, HTML, XML, CSV and JSON,
and ZIP files of text. Sizes from about 1 KB to a few MB; about 1,500 files and
300 MB. Issue 11: siegfried matches these by signature early in each file, so the
work is in copying and hashing, not in identification (unlike random bytes).
"""

from __future__ import annotations

import io
import json
import math
import random
import struct
import subprocess
import wave
import zipfile
from pathlib import Path

LATIN = ["archive", "council", "parish", "register", "harbour", "winter", "survey", "letter",
         "minutes", "market", "school", "church", "bridge", "road", "tithe", "census", "mill",
         "farm", "river", "street"]
KAZAKH = ["мұрағат", "кеңес", "тізілім", "айлақ", "қыс", "зерттеу", "хат", "хаттама", "базар",
          "мектеп", "көпір", "жол", "санақ", "диірмен", "ферма", "өзен", "көше", "қала", "ауыл"]
AZERBAIJANI = ["arxiv", "şura", "reyestr", "liman", "qış", "tədqiqat", "məktub", "protokol",
               "bazar", "məktəb", "körpü", "yol", "siyahıyaalma", "dəyirman", "ferma", "çay",
               "küçə", "şəhər", "kənd"]
CONVERT = "/usr/bin/convert" if Path("/usr/bin/convert").exists() else "convert"


def _words(rng: random.Random, vocabulary: list[str], count: int) -> str:
    lines, line = [], []
    for _ in range(count):
        line.append(rng.choice(vocabulary) + (str(rng.randrange(1000)) if rng.random() < 0.1
                                              else ""))
        if len(line) >= rng.randint(6, 14):
            lines.append(" ".join(line))
            line = []
    return "\n".join(lines + [" ".join(line)]) + "\n"


def _image(path: Path, rng: random.Random, options: list[str]) -> None:
    w = rng.randint(80, 800)
    h = int(w * rng.uniform(0.6, 1.4))
    subprocess.run([CONVERT, "-seed", str(rng.randrange(1 << 30)), "-size", f"{w}x{h}",
                    "plasma:", *options, str(path)], check=True, capture_output=True)


def _pdf(path: Path, rng: random.Random) -> None:
    import pikepdf

    pdf = pikepdf.new()
    font = pdf.make_indirect(pikepdf.Dictionary(Type=pikepdf.Name.Font,
                                                Subtype=pikepdf.Name.Type1,
                                                BaseFont=pikepdf.Name.Helvetica))
    for _ in range(rng.randint(1, 12)):
        text = _words(rng, LATIN, rng.randint(80, 400)).splitlines()[:50]
        ops = ["BT /F1 10 Tf 50 800 Td 12 TL"]
        ops += [f"({line}) Tj T*" for line in text]
        ops.append("ET")
        page = pikepdf.Page(pikepdf.Dictionary(
            Type=pikepdf.Name.Page, MediaBox=[0, 0, 595, 842],
            Resources=pikepdf.Dictionary(Font=pikepdf.Dictionary(F1=font)),
            Contents=pdf.make_stream("\n".join(ops).encode("latin-1"))))
        pdf.pages.append(page)
    pdf.save(path)


def _wav(path: Path, rng: random.Random) -> None:
    rate = rng.choice((22050, 44100, 48000))
    seconds = rng.uniform(0.2, 8)
    tone = rng.uniform(200, 900)
    frames = int(rate * seconds)
    samples = bytearray()
    for i in range(frames):
        v = int(12000 * math.sin(2 * math.pi * tone * i / rate) + rng.randint(-3000, 3000))
        samples += struct.pack("<h", v)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(bytes(samples))


def _text(rng: random.Random, size: int) -> str:
    vocabulary = rng.choice((LATIN, KAZAKH, AZERBAIJANI))
    return _words(rng, vocabulary, max(10, size // 8))


def _html(rng: random.Random) -> str:
    body = "".join(f"<p>{line}</p>\n" for line in _text(rng, rng.randint(500, 60_000))
                   .splitlines())
    return (f"<!DOCTYPE html>\n<html lang=\"kk\"><head><meta charset=\"utf-8\"><title>"
            f"{rng.randrange(10**6)}</title></head><body>\n{body}</body></html>\n")


def _xml(rng: random.Random) -> str:
    items = "".join(f"  <record id=\"{i}\"><title>{line}</title></record>\n"
                    for i, line in enumerate(_text(rng, rng.randint(500, 80_000)).splitlines()))
    return f"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<records>\n{items}</records>\n"


def _csv(rng: random.Random) -> str:
    rows = ["id,name,place,year"] + [
        f"{i},{rng.choice(AZERBAIJANI)},{rng.choice(KAZAKH)},{rng.randint(1850, 2020)}"
        for i in range(rng.randint(20, 4000))]
    return "\n".join(rows) + "\n"


def _json(rng: random.Random) -> str:
    return json.dumps([{"id": i, "title": rng.choice(LATIN), "place": rng.choice(KAZAKH),
                        "year": rng.randint(1850, 2020)} for i in range(rng.randint(10, 3000))],
                      ensure_ascii=False, indent=1)


def _zip(path: Path, rng: random.Random) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        for i in range(rng.randint(2, 20)):
            z.writestr(f"doc-{i:02d}.txt", _text(rng, rng.randint(500, 40_000)))
    path.write_bytes(buffer.getvalue())


# kind: (count, folder, extension, maker)
KINDS = {
    "png": (180, "images", "png", lambda p, r: _image(p, r, [])),
    "jpeg": (220, "images", "jpg", lambda p, r: _image(p, r, ["-quality", "85"])),
    "tiff": (40, "images", "tif", lambda p, r: _image(p, r, ["-compress", "none"])),
    "bmp": (30, "images", "bmp", lambda p, r: _image(p, r, [])),
    "gif": (60, "images", "gif", lambda p, r: _image(p, r, ["-colors", "128"])),
    "pdf": (90, "documents", "pdf", _pdf),
    "wav": (50, "audio", "wav", _wav),
    "text": (330, "texts", "txt", lambda p, r: p.write_text(_text(r, r.randint(800, 120_000)),
                                                            encoding="utf-8")),
    "html": (140, "web", "html", lambda p, r: p.write_text(_html(r), encoding="utf-8")),
    "xml": (140, "metadata", "xml", lambda p, r: p.write_text(_xml(r), encoding="utf-8")),
    "csv": (90, "data", "csv", lambda p, r: p.write_text(_csv(r), encoding="utf-8")),
    "json": (90, "data", "json", lambda p, r: p.write_text(_json(r), encoding="utf-8")),
    "zip": (40, "transfers", "zip", _zip),
}


def make(target: Path) -> None:
    """Write the corpus into `target` (which must not exist yet)."""
    for kind, (count, folder, extension, maker) in KINDS.items():
        for i in range(count):
            rng = random.Random(f"{kind}-{i}")
            sub = target / folder / f"batch-{i % 12:02d}"
            sub.mkdir(parents=True, exist_ok=True)
            maker(sub / f"{kind}-{i:04d}.{extension}", rng)
