"""Access copies (issues 27, 28): a searchable PDF/A of a PDF of scans, made from the AIP,
kept outside it, recorded, remade only when missing or stale."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pikepdf
import pytest
from PIL import Image

from preserve.repository import Repository
from tests.test_cli import run
from tests.test_search import PAGES, render_page

pytestmark = pytest.mark.skipif(shutil.which("tesseract") is None,
                                reason="scripts/setup.sh installs tesseract")


def _text(pdf: Path) -> str:
    return subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True,
                          check=True).stdout


def test_a_pdf_of_scans_gets_a_searchable_pdfa_copy_outside_the_aip(tmp_path):
    sip = tmp_path / "sip"
    sip.mkdir()
    render_page(PAGES["kaz"], tmp_path / "kk.png")
    with Image.open(tmp_path / "kk.png") as page:
        page.save(sip / "book.pdf", resolution=300)  # no text layer
    (sip / "notes.txt").write_text("born digital", encoding="utf-8")
    root = tmp_path / "repo"
    run(root, "init")
    aip = json.loads(run(root, "ingest", "-c", "Books", sip, "--json").stdout)["id"]
    assert "name AIPs" in run(root, "access", "build", check_code=2).stderr
    run(root, "extract", "--all")
    said = json.loads(run(root, "access", "build", "--all", "--json").stdout)
    assert [m["path"] for m in said["made"]] == ["data/book.pdf"]  # not the text file
    assert said["made"][0]["languages"] == ["kaz"]
    copy = root / "access" / aip / "book.pdf"
    with pikepdf.open(copy) as pdf:
        assert pdf.open_metadata().pdfa_status == "2B"
    assert "Қазақстан Республикасының" in _text(copy)
    repo = Repository(root)
    assert repo.catalog.get_aip(aip).version == 2  # the AIP is not changed by its copies
    events = repo.catalog.execute("SELECT detail FROM events WHERE aip_id = ? AND type = "
                                  "'creation'", (aip,)).fetchall()
    assert len(events) == 1 and "PDF/A-2b with a text layer" in events[0][0]
    again = json.loads(run(root, "access", "build", aip, "--json").stdout)
    assert again["made"] == [] and again["current"] == 1
    # rebuilt from the AIP at any time: the same text
    first = _text(copy)
    shutil.rmtree(root / "access")
    assert len(json.loads(run(root, "access", "build", "--all", "--json").stdout)["made"]) == 1
    assert _text(copy) == first


def test_a_damaged_source_gives_no_copy(tmp_path):
    sip = tmp_path / "sip"
    sip.mkdir()
    render_page(PAGES["eng"], tmp_path / "en.png")
    with Image.open(tmp_path / "en.png") as page:
        page.save(sip / "scan.pdf", resolution=300)
    root = tmp_path / "repo"
    run(root, "init")
    aip = json.loads(run(root, "ingest", "-c", "Books", sip, "--json").stdout)["id"]
    run(root, "extract", "--all")
    repo = Repository(root)
    from preserve.domain import ocfl

    stored = repo.primary_location().local_path(ocfl.object_root(aip)) / "v1" / "content" \
        / "data" / "scan.pdf"
    original = stored.read_bytes()
    stored.write_bytes(original[:-10] + b"0123456789")  # same size, other bytes
    said = run(root, "access", "build", "--all", "--json", check_code=1)
    failed = json.loads(said.stdout)["failed"]
    assert failed and "does not match its recorded sha512" in failed[0]["error"]
    assert not (root / "access" / aip / "scan.pdf").exists()
    stored.write_bytes(original)


def _policy(root: Path, *changes: tuple[str, str]) -> None:
    policy = root / "policies" / "default.yaml"
    text = policy.read_text(encoding="utf-8")
    for old, new in changes:
        assert old in text
        text = text.replace(old, new)
    policy.write_text(text, encoding="utf-8")


def test_images_sound_and_video_get_copies_by_policy_in_the_access_location(tmp_path):
    sip = tmp_path / "sip"
    (sip / "scans").mkdir(parents=True)
    frames = [Image.new("RGB", (1200, 900), colour) for colour in ("white", "#c0d0e0")]
    frames[0].save(sip / "scans" / "letter.tif", save_all=True, append_images=frames[1:],
                   compression="tiff_lzw")
    Image.new("RGBA", (300, 200), (10, 20, 30, 128)).save(sip / "scans" / "seal.png")
    subprocess.run(["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i",
                    "sine=frequency=440:duration=2", str(sip / "song.wav")], check=True)
    subprocess.run(["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i",
                    "testsrc=duration=1:size=160x120:rate=10", "-f", "lavfi", "-i",
                    "sine=duration=1", "-shortest", "-c:v", "ffv1", "-c:a", "pcm_s16le",
                    str(sip / "film.mkv")], check=True)
    root = tmp_path / "repo"
    run(root, "init")
    shelf = tmp_path / "shelf"
    run(root, "storage", "add", "reading", shelf, "--role", "access")
    aip = json.loads(run(root, "ingest", "-c", "Pictures", sip, "--json").stdout)["id"]
    said = json.loads(run(root, "access", "build", "--all", "--json").stdout)
    made = {m["path"]: m for m in said["made"]}
    assert made["data/scans/letter.tif"]["files"] == ["scans/letter.tif.0001.jpg",
                                                      "scans/letter.tif.0002.jpg"]
    assert made["data/scans/letter.tif"]["pages"] == 2
    assert made["data/song.wav"]["files"] == ["song.wav.opus"]
    assert made["data/film.mkv"]["files"] == ["film.mkv.mp4"]
    assert not (root / "access").exists()  # all of it in the access location
    folder = shelf / aip
    with Image.open(folder / "scans" / "letter.tif.0002.jpg") as second:
        assert second.size == (1200, 900) and second.getpixel((5, 5))[0] in range(185, 200)
    info = json.loads((folder / "scans" / "letter.tif.pages" / "0001" / "info.json")
                      .read_text())
    assert (info["profile"], info["width"], info["height"]) == ("level0", 1200, 900)
    tiles = list((folder / "scans" / "letter.tif.pages" / "0001").rglob("default.jpg"))
    assert len(tiles) >= 4
    with Image.open(folder / "scans" / "seal.png.thumb.jpg") as thumb:
        assert thumb.width == 300 and thumb.mode == "RGB"  # alpha flattened
    probe = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_name",
                            "-of", "csv=p=0", str(folder / "film.mkv.mp4")],
                           capture_output=True, text=True, check=True).stdout.split()
    assert probe == ["h264", "aac"]
    probe = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_name",
                            "-of", "csv=p=0", str(folder / "song.wav.opus")],
                           capture_output=True, text=True, check=True).stdout.split()
    assert probe == ["opus"]
    repo = Repository(root)
    assert repo.catalog.get_aip(aip).version == 1  # never in the preservation versions
    assert "access" not in repo.locations  # never a preservation location
    kinds = [d for (d,) in repo.catalog.execute(
        "SELECT detail FROM events WHERE aip_id = ? AND type = 'creation'", (aip,))]
    assert len(kinds) == 4 and any("Opus 96 kbit/s" in k for k in kinds)
    repo.close()
    # the policy changes its mind: sound as MP3, images without tiles
    _policy(root, ("sound: opus", "sound: mp3"), ("images: iiif", "images: jpeg"))
    said = json.loads(run(root, "access", "build", "--all", "--json").stdout)
    assert sorted(m["path"] for m in said["made"]) == ["data/scans/letter.tif",
                                                       "data/scans/seal.png", "data/song.wav"]
    assert said["current"] == 1  # the video
    assert (folder / "song.wav.mp3").is_file() and not (folder / "song.wav.opus").exists()
    assert not (folder / "scans" / "letter.tif.pages").exists()
    assert (folder / "scans" / "letter.tif.0001.jpg").is_file()


def test_an_access_location_is_never_a_preservation_location(tmp_path):
    root = tmp_path / "repo"
    run(root, "init")
    run(root, "storage", "add", "reading", tmp_path / "shelf", "--role", "access")
    assert "must be a local folder" in run(root, "storage", "add", "s3access",
                                           "s3://bucket/x", "--role", "access",
                                           check_code=2).stderr
    policy = root / "policies" / "default.yaml"
    policy.write_text(policy.read_text(encoding="utf-8").replace(
        "locations: [local]", "locations: [local, reading]").replace(
        "copies: 1", "copies: 2"), encoding="utf-8")
    said = run(root, "list", check_code=2).stderr
    assert "role is access" in said


def test_access_build_queued_on_postgresql_is_a_job_per_aip(tmp_path, fresh_database):
    from tests.conftest import two_disk_repo

    repo = two_disk_repo(tmp_path, fresh_database)
    root = repo.root
    repo.close()
    ids = []
    for n in range(2):
        sip = tmp_path / f"sip{n}"
        sip.mkdir()
        Image.new("RGB", (600, 400), "white").save(sip / f"photo{n}.png")
        ids.append(json.loads(run(root, "ingest", "-c", "Photos", sip, "--json").stdout)["id"])
    queued = json.loads(run(root, "access", "build", "--all", "--queue", "--json").stdout)
    assert queued["task"] == "access-build" and len(queued["jobs"]) == 2
    run(root, "worker", "--once")
    jobs = [j for j in json.loads(run(root, "jobs", "--json").stdout)
            if j["task"] == "access-build"]
    assert sorted(j["status"] for j in jobs) == ["succeeded", "succeeded"], jobs
    for n, aip in enumerate(ids):
        assert (root / "access" / aip / f"photo{n}.png.jpg").is_file()
        assert (root / "access" / f"{aip}.iiif.json").is_file()


def test_the_reading_room_plays_sound_and_video_and_resumes_them(tmp_path):
    from tests.test_reading_room import _get, _start

    sip = tmp_path / "sip"
    sip.mkdir()
    subprocess.run(["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i",
                    "sine=frequency=330:duration=2", str(sip / "talk.wav")], check=True)
    subprocess.run(["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i",
                    "testsrc=duration=1:size=160x120:rate=10", "-c:v", "ffv1",
                    str(sip / "reel.mkv")], check=True)
    root = tmp_path / "repo"
    run(root, "init")
    aip = json.loads(run(root, "ingest", "-c", "Sound", sip, "--json").stdout)["id"]
    run(root, "access", "build", "--all")
    server, base = _start(root)
    try:
        page = _get(f"{base}/aip/{aip}")[1].decode()
        assert f'<audio controls preload="none" src="/aip/{aip}/copy/talk.wav.opus">' in page
        assert f'<video controls preload="none" src="/aip/{aip}/copy/reel.mkv.mp4">' in page
        whole = (root / "access" / aip / "reel.mkv.mp4").read_bytes()
        head = _get(f"{base}/aip/{aip}/copy/reel.mkv.mp4", {"Range": "bytes=0-999"})
        tail = _get(f"{base}/aip/{aip}/copy/reel.mkv.mp4", {"Range": "bytes=1000-"})
        assert (head[0], tail[0]) == (206, 206) and head[1] + tail[1] == whole
        assert _get(f"{base}/aip/{aip}/thumbnail.jpg")[1].startswith(b"\xff\xd8")  # poster
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_what_an_interrupted_build_left_is_removed_and_made_again(tmp_path):
    sip = tmp_path / "sip"
    sip.mkdir()
    Image.new("RGB", (800, 600), "white").save(sip / "photo.png")
    root = tmp_path / "repo"
    run(root, "init")
    aip = json.loads(run(root, "ingest", "-c", "Photos", sip, "--json").stdout)["id"]
    ended = root / "access" / ".staging" / "999999999-0badc0de"  # no such process
    (ended / "photo.png.pages" / "0001").mkdir(parents=True)
    (ended / "photo.png.jpg").write_bytes(b"half a copy")
    running = root / "access" / ".staging" / f"{os.getpid()}-0badc0de"  # still running
    running.mkdir()
    said = json.loads(run(root, "access", "build", "--all", "--json").stdout)
    assert [m["path"] for m in said["made"]] == ["data/photo.png"]
    assert not ended.exists() and running.is_dir()
    # a copy lost from the access location is stale: made again, and only it
    (root / "access" / aip / "photo.png.jpg").unlink()
    said = json.loads(run(root, "access", "build", "--all", "--json").stdout)
    assert [m["path"] for m in said["made"]] == ["data/photo.png"]
    assert (root / "access" / aip / "photo.png.jpg").read_bytes().startswith(b"\xff\xd8")


def test_the_reading_room_on_a_postgresql_catalog_reads_only(tmp_path, fresh_database):
    from preserve.catalog.database import Database
    from tests.conftest import two_disk_repo
    from tests.test_reading_room import _get, _start

    repo = two_disk_repo(tmp_path, fresh_database)
    root = repo.root
    repo.close()
    ids = {}
    for name in ("open", "closed"):
        sip = tmp_path / name
        sip.mkdir()
        Image.new("RGB", (900, 700), "white").save(sip / f"{name}.png")
        ids[name] = json.loads(run(root, "ingest", "-c", "Photos", "--title", f"The {name} "
                                   "photograph", sip, "--json").stdout)["id"]
    run(root, "rights", ids["open"], "--status", "public-domain")
    run(root, "rights", ids["closed"], "--status", "unknown")
    run(root, "access", "build", "--all")
    server, base = _start(root)
    try:
        status, body, _ = _get(f"{base}/aip/{ids['open']}")
        assert status == 200 and "The open photograph" in body.decode()
        info = json.loads(_get(f"{base}/aip/{ids['open']}/iiif/0/info.json")[1])
        assert (info["width"], info["height"]) == (900, 700)
        for route in ("", "/iiif/0/info.json", "/thumbnail.jpg", "/manifest.json"):
            status, body, _ = _get(f"{base}/aip/{ids['closed']}{route}")
            assert status == 404 and b"closed photograph" not in body
        home = _get(base + "/")[1].decode()
        assert "Photos</a> (1)" in home  # the closed one is not counted
    finally:
        server.terminate()
        server.wait(timeout=30)
    reader = Database(fresh_database, read_only=True)  # what the room opens
    try:
        with pytest.raises(Exception, match="read-only"):
            reader.execute("UPDATE aips SET title = 'changed'")
    finally:
        reader.close()


def test_a_migrated_file_is_copied_from_its_derivative_once(tmp_path):
    """After a migration the BMP is represented by its PNG: the BMP's copy is removed,
    the PNG's made; never both."""
    from tests.test_migrate import _one_bmp_repo

    root, aip = _one_bmp_repo(tmp_path)
    said = json.loads(run(root, "access", "build", "--all", "--json").stdout)
    assert [m["path"] for m in said["made"]] == ["data/scan.bmp"]
    run(root, "migrate", "--apply")
    said = json.loads(run(root, "access", "build", "--all", "--json").stdout)
    assert said["removed"] == [{"aip": aip, "path": "data/scan.bmp"}]
    assert [m["path"] for m in said["made"]] == ["data/scan.png"]
    folder = root / "access" / aip
    assert not (folder / "scan.bmp.jpg").exists() and not (folder / "scan.bmp.pages").exists()
    assert (folder / "scan.png.jpg").is_file()
    iiif = json.loads((root / "access" / f"{aip}.iiif.json").read_text())
    assert len(iiif["items"]) == 1 and "scan.png" not in json.dumps(iiif)  # by number


def test_an_office_document_gets_a_pdfa_copy_by_libreoffice(tmp_path):
    sip = tmp_path / "sip"
    sip.mkdir()
    (tmp_path / "minutes.txt").write_text("Minutes of the council, 1923.\nҚазақстан\n",
                                          encoding="utf-8")
    subprocess.run(["soffice", "--headless", "--norestore",
                    f"-env:UserInstallation={(tmp_path / 'profile').as_uri()}",
                    "--convert-to", "odt", "--outdir", str(sip), str(tmp_path / "minutes.txt")],
                   check=True, capture_output=True, timeout=300)
    root = tmp_path / "repo"
    run(root, "init")
    aip = json.loads(run(root, "ingest", "-c", "Council", sip, "--json").stdout)["id"]
    said = json.loads(run(root, "access", "build", "--all", "--json").stdout)
    assert said["made"][0]["files"] == ["minutes.odt.pdf"] and said["made"][0]["pages"] == 1
    copy = root / "access" / aip / "minutes.odt.pdf"
    with pikepdf.open(copy) as pdf:
        assert pdf.open_metadata().pdfa_status == "2B"
    assert "Қазақстан" in _text(copy)
