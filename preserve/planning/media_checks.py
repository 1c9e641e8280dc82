"""Proof for images, audio and video: both files decoded at the source's own precision and
what comes out compared exactly (pixels, PCM samples, every video frame), after the
dimensions, depth, rates, channels and frame counts. See planning/equivalence.py."""

from __future__ import annotations

import array
import hashlib
import json
from fractions import Fraction
from pathlib import Path

from preserve.errors import PreserveError
from preserve.planning.proof import DECODE_MEMORY_MB, CheckFailed
from preserve.system.tools import find_tool, hash_output, output_text, run_tool


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


def stream_kinds(path: Path, timeout: float = 60) -> frozenset[str] | None:
    """The kinds of stream a media file holds ("audio", "video", ...), from its headers
    (ffprobe); None where ffprobe is missing or cannot read it: the format's rule then
    stands as for any file of the format."""
    try:
        text = output_text(["ffprobe", "-v", "error", "-show_entries", "stream=codec_type",
                            "-of", "json", str(path)], timeout=timeout)
        return frozenset(str(s.get("codec_type")) for s in json.loads(text).get("streams", []))
    except (PreserveError, OSError, ValueError):
        return None


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
