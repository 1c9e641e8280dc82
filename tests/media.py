"""Real files of the formats migration handles, made for tests: some by hand (BMP, WAV:
byte layouts simple enough to write exactly), the rest by the real tools the repository
installs (ImageMagick, ffmpeg, LibreOffice). Content comes from a seed, so every file is
unique and a test that fails can be re-run on the same bytes."""

from __future__ import annotations

import random
import struct
import subprocess
import wave
from pathlib import Path


def bmp(path: Path, width: int = 37, height: int = 23, seed: int = 1) -> Path:
    """A 24-bit Windows bitmap of random pixels (rows padded to 4 bytes, bottom-up)."""
    rng = random.Random(seed)
    stride = (width * 3 + 3) & ~3
    rows = b"".join(rng.randbytes(width * 3) + b"\0" * (stride - width * 3)
                    for _ in range(height))
    header = struct.pack("<2sIHHI", b"BM", 54 + len(rows), 0, 0, 54)
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, len(rows), 2835, 2835, 0, 0)
    path.write_bytes(header + info + rows)
    return path


def wav(path: Path, bits: int = 24, seconds: float = 0.5, rate: int = 48000,
        channels: int = 2, seed: int = 1) -> Path:
    """PCM WAVE of random samples: every bit of every sample significant, so any loss of
    depth changes the decoded samples."""
    rng = random.Random(seed)
    frames = int(seconds * rate)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(bits // 8)
        w.setframerate(rate)
        w.writeframes(rng.randbytes(frames * channels * bits // 8))
    return path


def run(*argv) -> None:
    subprocess.run([str(a) for a in argv], check=True, capture_output=True, timeout=120)


def image(path: Path, *options: str, seed: int = 1) -> Path:
    """An image made by ImageMagick from random pixels (`options` set depth, type...)."""
    run("/usr/bin/convert" if Path("/usr/bin/convert").exists() else "convert",
        "-seed", str(seed), "-size", "33x21", "plasma:", *options, path)
    return path


def aiff(path: Path, source_wav: Path) -> Path:
    """An AIFF holding exactly the WAV's samples, at its depth (big-endian PCM)."""
    with wave.open(str(source_wav)) as w:
        bits = w.getsampwidth() * 8
    run("ffmpeg", "-nostdin", "-v", "error", "-y", "-i", source_wav, "-c:a",
        f"pcm_s{bits}be", path)
    return path


def video(path: Path, seconds: float = 1.0) -> Path:
    """AVI (MPEG-4 part 2 video, PCM audio): a legacy format with lossy frames."""
    run("ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i",
        f"testsrc=d={seconds}:s=64x48:r=10", "-f", "lavfi", "-i", f"sine=d={seconds}",
        "-c:v", "mpeg4", "-c:a", "pcm_s16le", path)
    return path


def office(folder: Path, text: str, kinds: tuple[str, ...] = ("docx", "odt", "pdf")
           ) -> dict[str, Path]:
    """The same text as DOCX, ODT and plain PDF, written by LibreOffice."""
    folder.mkdir(parents=True, exist_ok=True)
    source = folder / "letter.txt"
    source.write_text(text, encoding="utf-8")
    made = {}
    for kind in kinds:
        run("soffice", "--headless", "--norestore",
            f"-env:UserInstallation={(folder / 'lo-profile').as_uri()}", "--convert-to", kind,
            "--outdir", folder, source)
        made[kind] = folder / f"letter.{kind}"
    source.unlink()
    return made


def photo_pdf(path: Path, grain: int = 12, seed: int = 1) -> Path:
    """A one-page PDF of a 256x256 RGB photo kept losslessly (Flate) with a scan's grain of
    +-`grain` levels, and a caption: what pdfwrite's defaults re-encode as JPEG."""
    import random
    import zlib

    import pikepdf

    rnd = random.Random(seed)
    data = bytearray()
    for y in range(256):
        for x in range(256):
            n = rnd.randint(-grain, grain)
            data += bytes(max(0, min(255, v + n)) for v in (x, y, (x + y) // 2))
    pdf = pikepdf.new()
    image = pikepdf.Stream(pdf, zlib.compress(bytes(data)))
    image.Type, image.Subtype = pikepdf.Name.XObject, pikepdf.Name.Image
    image.Width = image.Height = 256
    image.ColorSpace, image.BitsPerComponent = pikepdf.Name.DeviceRGB, 8
    image.Filter = pikepdf.Name.FlateDecode
    font = pdf.make_indirect(pikepdf.Dictionary(Type=pikepdf.Name.Font,
                                                Subtype=pikepdf.Name.Type1,
                                                BaseFont=pikepdf.Name.Helvetica))
    content = (b"q 256 0 0 256 100 400 cm /Im0 Do Q BT /F1 12 Tf 100 380 Td "
               b"(Scan of plate 7) Tj ET")
    page = pikepdf.Dictionary(
        Type=pikepdf.Name.Page, MediaBox=[0, 0, 612, 792],
        Resources=pikepdf.Dictionary(XObject=pikepdf.Dictionary(Im0=image),
                                     Font=pikepdf.Dictionary(F1=font)),
        Contents=pdf.make_stream(content))
    pdf.pages.append(pikepdf.Page(page))
    pdf.save(path)
    return path
