"""Format policy, risk report and migration that proves the content survived (issue 10).

Everything runs the real tools (ImageMagick, ffmpeg, Ghostscript, LibreOffice, poppler,
pikepdf's PDF/A validator) on real files; the derivatives are checked again here with
tools of their own where it matters (ffprobe for FLAC's depth, bagit-python for the
exported versions, ocfl-py for what is stored)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from preserve.domain.formats import load_format_policy
from preserve.errors import ConfigError
from preserve.planning.migrate import derivative_name
from preserve.repository import Repository, bundled_policies
from tests import media
from tests.conftest import as_at_a_terminal, assert_bagit_python_valid, content_key, object_key
from tests.test_cli import run

POLICY = bundled_policies() / "formats.yaml"


# -- the policy ------------------------------------------------------------------------------

@pytest.mark.parametrize("puid,action,target", [
    ("fmt/119", "migrate", "fmt/13"), ("fmt/90", "migrate", "fmt/13"),        # BMP, PCX
    ("x-fmt/367", "migrate", "fmt/13"), ("fmt/4", "migrate", "fmt/13"),       # TGA, GIF
    ("fmt/353", "keep", None), ("fmt/11", "keep", None), ("fmt/43", "keep", None),
    ("x-fmt/392", "keep", None),                                              # TIFF...JP2
    ("fmt/143", "migrate", "fmt/279"), ("fmt/414", "migrate", "fmt/279"),    # WAV, AIFF
    ("fmt/20", "migrate", "fmt/477"), ("fmt/276", "migrate", "fmt/477"),     # PDF 1.6, 1.7
    ("fmt/477", "keep", None),                                                # PDF/A-2b
    ("fmt/40", "migrate", "fmt/477"), ("fmt/412", "migrate", "fmt/477"),     # DOC, DOCX
    ("fmt/45", "migrate", "fmt/477"), ("fmt/1756", "migrate", "fmt/477"),    # RTF, ODT
    ("x-fmt/394", "migrate", "fmt/477"),                                      # WordPerfect
    ("fmt/5", "migrate", "fmt/569"), ("fmt/133", "migrate", "fmt/569"),      # AVI, WMV
    ("x-fmt/384", "migrate", "fmt/569"), ("x-fmt/385", "migrate", "fmt/569"),  # MOV, MPEG-1
    ("x-fmt/386", "migrate", "fmt/569"), ("x-fmt/382", "migrate", "fmt/569"),  # MPEG-2, FLV
    ("fmt/134", "keep", None), ("fmt/132", "keep", None),                    # MP3, WMA
])
def test_the_default_policy_has_the_rules_the_archive_expects(puid, action, target):
    policy = load_format_policy(POLICY)
    rule = policy.rule_for(puid, None)
    assert rule is not None and rule.action == action
    if target:
        assert target in rule.target.puids and rule.checks


def test_mime_is_the_fallback_only_where_siegfried_named_nothing():
    policy = load_format_policy(POLICY)
    assert policy.rule_for(None, "image/bmp").name == "Windows Bitmap"
    assert policy.rule_for("fmt/11", "image/bmp").name == "PNG"  # the PUID decides


@pytest.mark.parametrize("change,named", [
    (("rules[0]", "risk", "hihg"), "'rules[0].risk' must be one of low, medium, high"),
    (("rules[0]", "pathway", "imagemagik-png"), "'rules[0].pathway' must name a pathway"),
    (("rules[0]", "checks", ["pixel"]), "'rules[0].checks' must list what proves"),
    (("rules[0]", "pathwya", "x"), "unknown key 'rules[0].pathwya'; did you mean "
                                   "'rules[0].pathway'?"),
    (("pathways.imagemagick-png", "args", ["{input}", "{outptu}"]), "names {outptu}"),
    (("pathways.imagemagick-png", "then", "imagemagick-png"), "without coming back"),
    (("rules[1]", "puids", ["fmt/119"]), "lists fmt/119, which rule 'Windows Bitmap'"),
    # red team 2026-12 case 48: no number of seconds or MiB, or out of any range
    *[(("pathways.imagemagick-png", "timeout_seconds", v), "'pathways.imagemagick-png."
       "timeout_seconds' must be a number of seconds above 0")
      for v in (float("inf"), float("nan"), 1e13, True, "10", 0, -1)],
    *[(("pathways.imagemagick-png", "memory_mb", v), "must be a whole number of MiB")
      for v in (True, 1e15, 63, 10**15)],
])
def test_a_mistake_in_the_policy_is_named_with_its_line(tmp_path, change, named):
    data = yaml.safe_load(POLICY.read_text())
    where, key, value = change
    node = data["pathways"][where.split(".", 1)[1]] if where.startswith("pathways") \
        else data["rules"][int(where[6:-1])]
    node[key] = value
    path = tmp_path / "formats.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(ConfigError) as e:
        load_format_policy(path)
    assert named in e.value.message
    assert e.value.message.startswith(f"{path}:")  # with the line: file:line: ...
    assert int(e.value.message.split(":")[1]) > 0


@pytest.mark.parametrize("text,named", [
    ("pathways:\n  a: &a [x, x, x]\n  b: &b [*a, *a, *a]\n", ":3: an alias (*a) refers"),
    ("pathways: {}\nrules: []\npathways: {}\n", ":3: the key 'pathways' is given again "
     "(first on line 1)"),
    ("pathways:\n  p:\n    tool: convert\n  p:\n    tool: gm\n", ":4: the key 'p' is "
     "given again"),
])
def test_yaml_that_hides_or_repeats_values_is_refused_with_its_line(tmp_path, text, named):
    """Red team 2026-12 cases 49 and 50: an alias bomb exhausted memory, and a key given
    twice silently took the last value."""
    path = tmp_path / "formats.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_format_policy(path)
    assert e.value.message.startswith(f"{path}{named}")


def test_a_billion_laughs_in_a_policy_is_refused_at_once(tmp_path):
    root = tmp_path / "repo"
    run(root, "init")
    bomb = "".join(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]\n"
                   for i in range(1, 10))
    for name in ("formats.yaml", "default.yaml"):
        path = root / "policies" / name
        kept = path.read_text()
        path.write_text(kept + "x0: &l0 lol\n" + bomb)
        started = time.monotonic()
        done = run(root, "formats", check_code=2)
        assert time.monotonic() - started < 30 and "an alias (*l0)" in done.stderr
        path.write_text(kept)


@given(st.lists(st.sampled_from(["a", "b.bmp", "c.tar.gz", ".hidden", "d.PNG", "e.png"]),
                min_size=1, max_size=6, unique=True),
       st.sampled_from(["png", "pdf", "flac"]))
def test_a_derivative_name_is_new_beside_its_source(names, extension):
    taken = {f"data/x/{n}" for n in names}
    for source in sorted(taken):
        name = derivative_name(source, extension, taken)
        assert name not in taken and name != source
        assert name.rsplit("/", 1)[0] == "data/x" and name.endswith(f".{extension}")
        taken.add(name)


# -- migration end to end ------------------------------------------------------------------

@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> Path:
    """One of each kind the issue names, made by hand or by the real tools."""
    root = tmp_path_factory.mktemp("media")
    src = root / "collection"
    for sub in ("images", "audio", "documents", "video"):
        (src / sub).mkdir(parents=True)
    media.bmp(src / "images" / "scan.bmp")
    media.image(src / "images" / "map.gif", "-colors", "16")                 # palette
    media.image(src / "images" / "plate.bmp", "-colorspace", "Gray", "-type", "Grayscale")
    media.image(src / "images" / "logo.tga", "-alpha", "set", "-channel", "A",
                "-evaluate", "set", "60%", "+channel")                        # RGBA
    media.wav(src / "audio" / "interview-16.wav", bits=16, seed=2)
    media.wav(src / "audio" / "interview-24.wav", bits=24, seed=3)
    media.aiff(src / "audio" / "song-24.aif", media.wav(root / "song.wav", bits=24, seed=4))
    made = media.office(root / "office", "Minutes of the parish council\nThe harbour wall "
                        "is to be repaired before winter.\nSigned: the clerk\n")
    for kind, path in made.items():
        (src / "documents" / f"minutes.{kind}").write_bytes(path.read_bytes())
    media.video(src / "video" / "reel.avi")
    return src


def _repo_with(tmp_path: Path, sources: Path) -> tuple[Path, str]:
    root = tmp_path / "repo"
    assert run(root, "init").returncode == 0
    done = run(root, "ingest", sources, "-c", "Parish", "--json")
    assert done.returncode == 0, done.stderr
    return root, json.loads(done.stdout)["id"]


def test_migration_adds_one_proven_version_and_keeps_every_original(tmp_path, sources):
    root, aip = _repo_with(tmp_path, sources)
    report = json.loads(run(root, "formats", "--json").stdout)
    due = [r for r in report if r["action"] == "migrate"]
    assert {r["rule"] for r in due} == {
        "Windows Bitmap", "GIF", "Truevision TGA", "WAVE audio", "AIFF audio",
        "Word processing documents", "PDF (not PDF/A)", "Legacy video"}
    assert all(r["pathway_works"] and r["pending"] == r["files"] for r in due)
    assert sum(r["files"] for r in due) == 11
    plan = json.loads(run(root, "migrate", "--plan", "--json").stdout)
    assert len(plan) == 11

    started = time.monotonic()
    done = run(root, "migrate", "--apply", "--workers", "2", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout)
    assert len(result["migrated"]) == 11 and result["rejected"] == []
    assert [v["version"] for v in result["versions"]] == [2]
    assert time.monotonic() - started < 120
    proofs = {m["source"]: m["proof"] for m in result["migrated"]}
    assert "pixels identical" in proofs["data/images/scan.bmp"]
    assert "samples identical as pcm_s24le" in proofs["data/audio/song-24.aif"]
    assert "samples identical as pcm_s16le" in proofs["data/audio/interview-16.wav"]
    assert "PDF/A-2b conformance approved" in proofs["data/documents/minutes.docx"]
    assert "rendered" in proofs["data/documents/minutes.pdf"]
    assert "frames" in proofs["data/video/reel.avi"]

    # nothing more to do; the same command again changes nothing
    assert json.loads(run(root, "migrate", "--plan", "--json").stdout) == []
    again = run(root, "migrate", "--apply", "--json")
    assert again.returncode == 0 and json.loads(again.stdout)["versions"] == []

    # v2 is a complete, valid bag holding originals and derivatives; v1 is as ingested
    v2, v1 = tmp_path / "v2", tmp_path / "v1"
    assert run(root, "export", aip, v2).returncode == 0
    assert run(root, "export", aip, v1, "--version", "1").returncode == 0
    assert_bagit_python_valid(v2)
    assert_bagit_python_valid(v1)
    for original in sources.rglob("*"):
        if original.is_file():
            rel = original.relative_to(sources)
            assert (v2 / "data" / rel).read_bytes() == original.read_bytes()
            assert (v1 / "data" / rel).read_bytes() == original.read_bytes()
    assert len(list((v1 / "data").rglob("*.*"))) == 11
    flac = v2 / "data" / "audio" / "song-24.flac"
    probe = subprocess.run(["ffprobe", "-v", "error", "-show_entries",
                            "stream=bits_per_raw_sample", "-of", "csv=p=0", flac],
                           capture_output=True, text=True)
    assert probe.stdout.strip() == "24"  # what Archivematica's AIFF command loses

    # PREMIS: each derivative has its source; each migration event links both
    premis = (v2 / "metadata" / "premis-v2.xml").read_text()
    assert premis.count("<premis:relationshipSubType>has source<") == 11
    assert premis.count("<premis:eventType>migration</premis:eventType>") == 11
    assert "<premis:linkingObjectRole>outcome</premis:linkingObjectRole>" in premis
    assert "<premis:agentName>ffmpeg</premis:agentName>" in premis
    assert "<premis:agentName>soffice</premis:agentName>" in premis
    shown = json.loads(run(root, "show", aip, "--json").stdout)
    assert len(shown["derivations"]) == 11 and shown["version"] == 2
    assert "format migration" in shown["versions"][-1]["message"]
    assert run(root, "check").returncode == 0


def _one_bmp_repo(tmp_path: Path) -> tuple[Path, str]:
    """A repository holding one AIP of one BMP scan (what the default policy migrates)."""
    src = tmp_path / "src"
    src.mkdir()
    media.bmp(src / "scan.bmp")
    return _repo_with(tmp_path, src)


def _policy(root: Path, edit) -> None:
    path = root / "policies" / "formats.yaml"
    data = yaml.safe_load(path.read_text())
    edit(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def _rule(data: dict, name: str) -> dict:
    return next(r for r in data["rules"] if r["name"] == name)


@pytest.mark.sqlite_catalog  # reads the SQLite file itself
def test_a_lossy_pathway_for_a_lossless_rule_is_rejected_and_nothing_changes(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    media.wav(src / "master.wav", bits=24, seed=5)
    media.image(src / "plate.tif", "-depth", "16")
    root, aip = _repo_with(tmp_path, src)

    def lossy(data):
        data["pathways"]["ffmpeg-flac"]["args"][-1:-1] = ["-sample_fmt", "s16"]
        data["pathways"]["tiff-to-8bit-png"] = {
            "tool": "convert", "args": ["{input}", "-depth", "8", "{output}"]}
        tiff = _rule(data, "TIFF")
        tiff.update(action="migrate", pathway="tiff-to-8bit-png", checks=["pixels"],
                    target={"puids": ["fmt/11", "fmt/12", "fmt/13"], "extension": "png"})

    _policy(root, lossy)
    before = (root / "catalog.sqlite").stat().st_size, sorted(
        p.relative_to(root) for p in (root / "aips").rglob("v*"))
    done = run(root, "migrate", "--apply", "--json", check_code=1)
    result = json.loads(done.stdout)
    assert result["migrated"] == [] and result["versions"] == []
    reasons = {r["source"]: r["reason"] for r in result["rejected"]}
    assert "16 bits per sample in the derivative, 24 in the source" in reasons["data/master.wav"]
    assert "bit depth is 8 in the derivative, 16 in the source" in reasons["data/plate.tif"]
    assert sorted(p.relative_to(root) for p in (root / "aips").rglob("v*")) == before[1]
    shown = json.loads(run(root, "show", aip, "--json").stdout)
    assert shown["version"] == 1
    failed = [e for e in shown["events"] if e["type"] == "migration"]
    assert len(failed) == 2 and all(e["outcome"] == "failure" for e in failed)
    logs = list((root / "aips" / object_key(aip) / "logs").glob("*-migration-*.xml"))
    assert len(logs) == 2 and "derivative rejected" in logs[0].read_text()
    assert not list((root / "staging").iterdir())  # working folders gone


def test_a_tool_that_hangs_is_stopped_at_its_timeout(tmp_path):
    root, aip = _one_bmp_repo(tmp_path)

    def hang(data):
        data["pathways"]["imagemagick-png"] = {
            "tool": "python3", "timeout_seconds": 1,
            "args": ["-c", "import time; time.sleep(120)", "{input}", "{output}"]}

    _policy(root, hang)
    started = time.monotonic()
    done = run(root, "migrate", "--apply", "--json", check_code=1)
    assert time.monotonic() - started < 30
    [rejected] = json.loads(done.stdout)["rejected"]
    assert "ran longer than 1 s and was stopped" in rejected["reason"]
    assert _running(f"time.sleep\\(120\\).*{tmp_path}") == b""  # this test's tool only
    assert json.loads(run(root, "show", aip, "--json").stdout)["version"] == 1


def test_a_missing_tool_is_said_before_anything_starts(tmp_path):
    root, aip = _one_bmp_repo(tmp_path)
    _policy(root, lambda d: d["pathways"]["imagemagick-png"].update(tool="no-such-converter"))
    [bmp] = [r for r in json.loads(run(root, "formats", "--json").stdout)
             if r["rule"] == "Windows Bitmap"]
    assert bmp["pathway_works"] is False and bmp["tools"] == {"no-such-converter": None}
    done = run(root, "migrate", "--apply", check_code=3)
    assert "'no-such-converter', which is not installed" in done.stderr
    assert "Traceback" not in done.stderr
    assert json.loads(run(root, "show", aip, "--json").stdout)["events"][-1]["type"] != \
        "migration"


@pytest.mark.storage_left_damaged
def test_a_damaged_source_is_never_migrated(tmp_path):
    root, aip = _one_bmp_repo(tmp_path)
    stored = root / "aips" / content_key(aip) / "data" / "scan.bmp"
    data = bytearray(stored.read_bytes())
    data[-1] ^= 1
    stored.write_bytes(bytes(data))
    done = run(root, "migrate", "--apply", "--json", check_code=1)
    [rejected] = json.loads(done.stdout)["rejected"]
    assert "does not match its recorded sha512" in rejected["reason"]
    assert json.loads(run(root, "show", aip, "--json").stdout)["version"] == 1


def test_reidentify_reports_a_changed_puid_and_the_policy_follows(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    media.bmp(src / "scan.bmp")
    (src / "notes.txt").write_text("notes\n")
    root, aip = _repo_with(tmp_path, src)
    repo = Repository(root)  # the catalog as an older signature file left it: "a PNG"
    with repo.catalog.transaction() as db:
        db.execute("UPDATE files SET puid = 'fmt/11' WHERE path = 'data/scan.bmp'")
    repo.close()
    assert json.loads(run(root, "migrate", "--plan", "--json").stdout) == []
    assert "give --all" in run(root, "reidentify", check_code=2).stderr
    done = run(root, "reidentify", "--all", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["files"] == 2
    assert result["changed"] == [{"aip": aip, "path": "data/scan.bmp", "old_puid": "fmt/11",
                                  "new_puid": "fmt/116", "new_format": "Windows Bitmap",
                                  "now_due": True}]
    [planned] = json.loads(run(root, "migrate", "--plan", "--json").stdout)
    assert planned["source"] == "data/scan.bmp" and planned["derivative"] == "data/scan.png"
    events = json.loads(run(root, "show", aip, "--json").stdout)["events"]
    assert events[-1]["type"] == "format identification"
    assert "fmt/11 -> fmt/116" in events[-1]["outcome_detail"]
    assert run(root, "reidentify", aip, "--json").returncode == 0  # nothing changes now


def test_sixteen_bit_images_keep_every_bit_in_every_mode(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    media.image(src / "rgb16.tif", "-depth", "16", seed=6)
    media.image(src / "grey16.tif", "-colorspace", "Gray", "-depth", "16", seed=7)
    media.image(src / "rgba16.tif", "-depth", "16", "-alpha", "set", "-channel", "A",
                "-evaluate", "set", "40%", "+channel", seed=8)
    media.image(src / "palette8.tif", "-colors", "12", "-type", "Palette", seed=9)
    root, _ = _repo_with(tmp_path, src)

    def tiff_to_png(data):  # as a lossless rule: every TIFF to PNG
        data["pathways"]["tiff-png"] = {"tool": "convert", "args": ["{input}[0]", "{output}"]}
        _rule(data, "TIFF").update(
            action="migrate", pathway="tiff-png", checks=["pixels"],
            target={"puids": ["fmt/11", "fmt/12", "fmt/13"], "extension": "png"})

    _policy(root, tiff_to_png)
    result = json.loads(run(root, "migrate", "--apply", "--json").stdout)
    proofs = {m["source"]: m["proof"] for m in result["migrated"]}
    assert len(proofs) == 4, result["rejected"]
    assert "16 bits, srgb" in proofs["data/rgb16.tif"]
    assert "16 bits, gray" in proofs["data/grey16.tif"]
    assert "16 bits, srgba" in proofs["data/rgba16.tif"]
    assert "8 bits" in proofs["data/palette8.tif"]


def test_archivematicas_default_commands_are_caught(tmp_path):
    """The three commands of Archivematica's rules that lose content silently
    (research/migration.md §3.1, §4.2, §4.3), configured here as pathways: each
    derivative is rejected, with the loss named, where Archivematica checks only that
    the output is not empty."""
    src = tmp_path / "src"
    src.mkdir()
    tif = media.image(tmp_path / "plate16.tif", "-resize", "200x150!", "-depth", "16")
    media.run("ffmpeg", "-nostdin", "-v", "error", "-y", "-i", tif, "-c:v", "libopenjpeg",
              "-pix_fmt", "rgb48le", src / "plate16.jp2")
    media.aiff(src / "song-24.aif", media.wav(tmp_path / "song.wav", bits=24, seed=9))
    pdf = media.office(tmp_path / "office", "A plain PDF letter\n", ("pdf",))["pdf"]
    (src / "letter.pdf").write_bytes(pdf.read_bytes())
    root, aip = _repo_with(tmp_path, src)

    def archivematica(data):
        data["pathways"].update({
            "am-jp2-tif": {"tool": "ffmpeg", "args": [
                "-nostdin", "-v", "error", "-vcodec", "libopenjpeg", "-i", "{input}",
                "-compression_algo", "raw", "-pix_fmt", "rgb24", "{output}"]},
            "am-aif-wav": {"tool": "ffmpeg", "args": ["-nostdin", "-v", "error", "-i",
                                                      "{input}", "{output}"]},
            "am-pdfa": {"tool": "gs", "args": [
                "-dPDFA", "-dBATCH", "-dNOPAUSE", "-sDEVICE=pdfwrite",
                "-dPDFACompatibilityPolicy=1", "-sOutputFile={output}", "{input}"]}})
        _rule(data, "JPEG 2000").update(
            action="migrate", pathway="am-jp2-tif", checks=["pixels"],
            target={"puids": ["fmt/353"], "extension": "tif"})
        _rule(data, "AIFF audio").update(
            pathway="am-aif-wav", target={"puids": ["fmt/1", "fmt/141", "fmt/142", "fmt/143"],
                                          "extension": "wav"})
        _rule(data, "PDF (not PDF/A)").update(
            pathway="am-pdfa", target={"puids": ["fmt/354"], "extension": "pdf", "pdfa": "1b"})

    _policy(root, archivematica)
    result = json.loads(run(root, "migrate", "--apply", "--json", check_code=1).stdout)
    assert result["migrated"] == [] and result["versions"] == []
    reasons = {r["source"]: r["reason"] for r in result["rejected"]}
    assert "bit depth is 8 in the derivative, 16 in the source" in reasons["data/plate16.jp2"]
    assert "16 bits per sample in the derivative, 24 in the source" in reasons["data/song-24.aif"]
    assert "not PDF/A-1b (fail)" in reasons["data/letter.pdf"]  # though it claims to be
    assert json.loads(run(root, "show", aip, "--json").stdout)["version"] == 1


def test_ctrl_c_stops_the_tools_and_a_rerun_migrates(tmp_path):
    root, aip = _one_bmp_repo(tmp_path)
    policy = root / "policies" / "formats.yaml"
    default = policy.read_text()
    _policy(root, lambda d: d["pathways"]["imagemagick-png"].update(
        tool="python3", args=["-c", "import time; time.sleep(90)", "{input}", "{output}"]))
    env = dict(os.environ, PRESERVE_REPO=str(root), PRESERVE_NO_PROGRESS="1")
    proc = subprocess.Popen([sys.executable, "-m", "preserve", "migrate", "--apply"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=as_at_a_terminal)
    mine = f"time.sleep\\(90\\).*{tmp_path}"  # this test's tool, not another run's (issue 22)
    _until(lambda: _running(mine) or proc.poll() is not None)
    assert proc.poll() is None
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err
    assert _running(mine) == b""
    assert list((root / "staging").iterdir()) == []
    assert json.loads(run(root, "show", aip, "--json").stdout)["version"] == 1

    policy.write_text(default)
    assert len(json.loads(run(root, "migrate", "--apply", "--json").stdout)["migrated"]) == 1
    assert json.loads(run(root, "show", aip, "--json").stdout)["version"] == 2


def _running(marker: str) -> bytes:
    return subprocess.run(["pgrep", "-f", marker], capture_output=True).stdout


def _until(condition, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_no_tool_outlives_a_kill_9_of_migrate_and_a_rerun_migrates(tmp_path):
    """Red team 2026-12 case 45: after kill -9 of migrate --apply, the tool (and the
    children it forked) kept running, writing into a folder the next run removes."""
    root, aip = _one_bmp_repo(tmp_path)
    policy = root / "policies" / "formats.yaml"
    default = policy.read_text()
    marker = f"sleep 97.{os.getpid()}"
    _policy(root, lambda d: d["pathways"]["imagemagick-png"].update(
        tool="sh", args=["-c", f"{marker}; sleep 1 # $0 $1", "{input}", "{output}"]))
    env = dict(os.environ, PRESERVE_REPO=str(root), PRESERVE_NO_PROGRESS="1")
    proc = subprocess.Popen([sys.executable, "-m", "preserve", "migrate", "--apply"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _until(lambda: _running(marker))
    proc.kill()
    proc.wait()
    _until(lambda: not _running(marker), 10)  # the tool's own child included
    policy.write_text(default)
    assert len(json.loads(run(root, "migrate", "--apply", "--json").stdout)["migrated"]) == 1
    assert json.loads(run(root, "show", aip, "--json").stdout)["version"] == 2
    assert list((root / "staging").iterdir()) == []


def test_a_tool_child_in_a_session_of_its_own_is_stopped_at_the_timeout(tmp_path):
    """Case 41: a child that called setsid escaped the process-group kill."""
    root, aip = _one_bmp_repo(tmp_path)
    marker = f"sleep 301.{os.getpid()}"
    _policy(root, lambda d: d["pathways"]["imagemagick-png"].update(
        tool="sh", timeout_seconds=2,
        args=["-c", f"setsid {marker} & sleep 1000 # $0 $1", "{input}", "{output}"]))
    done = run(root, "migrate", "--apply", "--json", check_code=1)
    assert "ran longer than 2 s" in json.loads(done.stdout)["rejected"][0]["reason"]
    _until(lambda: not _running(marker), 10)


def test_a_gif_is_proven_as_a_reader_shows_it_on_its_canvas(tmp_path):
    """Red team 2026-12 case 58: a 10x10 frame at +50+50 of a 100x100 logical screen
    became a 10x10 PNG (the canvas only in ImageMagick's private chunk), and the frame's
    raw pixels were called identical."""
    src = tmp_path / "src"
    src.mkdir()
    media.run("convert", "-size", "10x10", "xc:red", "-page", "100x100+50+50", src / "map.gif")
    root, aip = _repo_with(tmp_path, src)
    [rejected] = json.loads(run(root, "migrate", "--apply", "--json",
                                check_code=1).stdout)["rejected"]
    assert "is a 10x10 region at +50+50 of a 100x100 canvas" in rejected["reason"]
    def coalesced(data):
        data["pathways"]["coalesced-png"] = {
            "tool": "convert", "args": ["{input}", "-coalesce", "+repage", "{output}"]}
        _rule(data, "GIF").update(pathway="coalesced-png")

    _policy(root, coalesced)
    [migrated] = json.loads(run(root, "migrate", "--apply", "--json").stdout)["migrated"]
    assert "1 frame(s) of 100x100 as shown on the canvas" in migrated["proof"]


def test_an_embedded_image_reencoded_lossily_is_never_proven(tmp_path):
    """Red team 2026-12 case 44: pdfwrite's defaults re-encoded a grainy lossless photo as
    JPEG (94 per cent of its samples changed) and the 50 dpi grey render could not see it.
    The default pathway keeps images as they are, and the images check proves it."""
    src = tmp_path / "src"
    src.mkdir()
    media.photo_pdf(src / "plate7.pdf")
    root, aip = _repo_with(tmp_path, src)
    policy = root / "policies" / "formats.yaml"
    default = policy.read_text()

    def pdfwrite_defaults(data):
        args = data["pathways"]["ghostscript-pdfa2b"]["args"]
        args[:] = [a for a in args if not a.startswith(("-dAutoFilter", "-dColorImage",
                                                        "-dGrayImage", "-dPassThrough",
                                                        "-dDownsample"))]

    _policy(root, pdfwrite_defaults)
    [rejected] = json.loads(run(root, "migrate", "--apply", "--json",
                                check_code=1).stdout)["rejected"]
    assert "page 1: an image of 256x256 (8 bits, 3 components) is not in the derivative" \
        in rejected["reason"]
    policy.write_text(default)
    [migrated] = json.loads(run(root, "migrate", "--apply", "--json").stdout)["migrated"]
    assert "1 embedded image(s) on 1 page(s) identical" in migrated["proof"]


def test_unproven_is_told_apart_from_failed_and_a_fallback_pathway_is_tried(tmp_path):
    """Issue 21: a derivative no check could decide on ("could not be proven") is told
    apart from a wrong one in migrate's output, the events and `formats`; a rule's
    fallback pathways are tried in order when the one before is refused."""
    src = tmp_path / "src"
    src.mkdir()
    media.photo_pdf(src / "plate7.pdf")
    root, aip = _repo_with(tmp_path, src)

    def textless(data):  # valid PDF/A, same pages, but its text filtered out
        gs = data["pathways"]["ghostscript-pdfa2b"]
        data["pathways"]["gs-textless"] = {**gs, "args": ["-dFILTERTEXT", *gs["args"]]}
        _rule(data, "PDF (not PDF/A)").update(pathway="gs-textless")

    _policy(root, textless)
    done = json.loads(run(root, "migrate", "--apply", "--json", check_code=1).stdout)
    assert done["rejected"] == [] and done["migrated"] == []
    [unproven] = done["unproven"]
    assert unproven["outcome"] == "unproven" and "extracted text differs" in unproven["reason"]
    shown = json.loads(run(root, "show", aip, "--json").stdout)
    assert [e["outcome"] for e in shown["events"] if e["type"] == "migration"] == ["unproven"]
    [row] = [r for r in json.loads(run(root, "formats", "--json").stdout)
             if r["rule"] == "PDF (not PDF/A)"]
    assert (row["pending"], row["unproven"], row["failed"]) == (1, 1, 0)
    # issue 22: the same attempt is not repeated on every run (exit 1 for ever)
    said = run(root, "migrate", "--apply").stdout
    assert "1 file(s) not tried again" in said
    planned = json.loads(run(root, "migrate", "--plan", "--json").stdout)
    assert [p["last_outcome_unchanged"] for p in planned] == ["unproven"]
    said = run(root, "migrate", "--apply", "--retry", check_code=1).stdout
    assert "1 derivative(s) could not be proven" in said

    _policy(root, lambda d: _rule(d, "PDF (not PDF/A)").update(
        fallback=["ghostscript-pdfa2b"]))
    [migrated] = json.loads(run(root, "migrate", "--apply", "--json").stdout)["migrated"]
    assert migrated["outcome"] == "migrated"
    events = json.loads(run(root, "show", aip, "--json").stdout)["events"]
    assert "(after 'gs-textless' refused)" in [e for e in events if e["type"] == "migration"
                                               and e["outcome"] == "success"][0]["detail"]


def test_video_frames_shown_at_other_times_are_not_the_same_film(tmp_path):
    """Issue 21 (the same gap as cases 44 and 58, in the frames check): every decoded frame
    identical, but each shown twice as long, passed as 'frames identical'."""
    src = tmp_path / "src"
    src.mkdir()
    media.video(src / "reel.avi")
    root, aip = _repo_with(tmp_path, src)

    def slowed(data):
        ffv1 = data["pathways"]["ffmpeg-ffv1"]
        args = ffv1["args"]
        at = args.index("-fps_mode")
        data["pathways"]["ffv1-slowed"] = {**ffv1, "args": [
            *args[:at], "-vf", "setpts=2*PTS", *args[at:]]}
        _rule(data, "Legacy video").update(pathway="ffv1-slowed")

    _policy(root, slowed)
    [rejected] = json.loads(run(root, "migrate", "--apply", "--json",
                                check_code=1).stdout)["rejected"]
    assert "the timing differs" in rejected["reason"], rejected


def test_a_tool_message_names_the_stored_file_not_the_working_copy(tmp_path):
    """Issue 22: rejection reasons showed staging paths."""
    root, _aip = _one_bmp_repo(tmp_path)
    _policy(root, lambda d: d["pathways"]["imagemagick-png"].update(
        tool="sh", args=["-c", 'echo "cannot read $0" >&2; exit 1', "{input}", "{output}"]))
    [rejected] = json.loads(run(root, "migrate", "--apply", "--json",
                                check_code=1).stdout)["rejected"]
    assert rejected["reason"].endswith("cannot read data/scan.bmp)"), rejected["reason"]
    assert "staging" not in rejected["reason"]


def test_an_encrypted_pdf_fails_and_says_why(tmp_path):
    """Red team 2026-12 case 38 (kept passing through issue 21's third outcome): a PDF
    that needs a password cannot be compared, so it fails, named."""
    import pikepdf

    src = tmp_path / "src"
    src.mkdir()
    plain = media.photo_pdf(tmp_path / "plain.pdf")
    with pikepdf.open(plain) as pdf:
        pdf.save(src / "minutes.pdf", encryption=pikepdf.Encryption(user="u", owner="o"))
    root, aip = _repo_with(tmp_path, src)
    done = json.loads(run(root, "migrate", "--apply", "--json", check_code=1).stdout)
    [rejected] = done["rejected"]
    assert rejected["reason"].startswith("data/minutes.pdf is encrypted: a password is "
                                         "needed"), rejected["reason"]
    events = json.loads(run(root, "show", aip, "--json").stdout)["events"]
    assert [e["outcome"] for e in events if e["type"] == "migration"] == ["failure"]


def test_a_tool_output_that_is_a_link_is_rejected_cleanly(tmp_path):
    """Case 42: a link to the input passed every check (it is the input), then the run
    stopped with an internal error when the derivative was copied."""
    root, aip = _one_bmp_repo(tmp_path)
    _policy(root, lambda d: d["pathways"]["imagemagick-png"].update(
        tool="ln", args=["-s", "{input}", "{output}"]))
    [rejected] = json.loads(run(root, "migrate", "--apply", "--json",
                                check_code=1).stdout)["rejected"]
    assert "which is not a regular file" in rejected["reason"]
    assert json.loads(run(root, "show", aip, "--json").stdout)["version"] == 1


def test_a_tool_that_fills_the_disk_is_rejected_and_named(tmp_path):
    """Case 43: a tool flooding its output for 3 s left no room for the catalog: internal
    error 'database or disk is full', exit 3."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=60m", "tmpfs", str(disk)],
                      capture_output=True).returncode != 0:
        pytest.skip("no tmpfs can be mounted here")
    try:
        root, aip = _one_bmp_repo(disk)
        _policy(root, lambda d: d["pathways"]["imagemagick-png"].update(
            tool="sh", timeout_seconds=3,
            args=["-c", 'yes AAAAAAAAAAAAAAAAAAAAAAAA > "$1"', "{input}", "{output}"]))
        done = run(root, "migrate", "--apply", "--json", check_code=1)
        [rejected] = json.loads(done.stdout)["rejected"]
        assert "no space left on the disk of the working folder" in rejected["reason"]
        assert list((root / "staging").iterdir()) == []
        assert json.loads(run(root, "show", aip, "--json").stdout)["version"] == 1
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def test_a_tool_past_its_memory_limit_fails_and_is_said(tmp_path):
    root, _ = _one_bmp_repo(tmp_path)
    _policy(root, lambda d: d["pathways"]["imagemagick-png"].update(
        tool="python3", memory_mb=200,
        args=["-c", "b = bytearray(1 << 30)", "{input}", "{output}"]))
    [rejected] = json.loads(run(root, "migrate", "--apply", "--json", check_code=1).stdout)[
        "rejected"]
    assert "python3 failed (exit 1: MemoryError)" in rejected["reason"]


def test_a_migration_reaches_every_replica_location(tmp_path):
    from preserve.ingest.ingest import Metadata, ingest
    from preserve.planning.migrate import apply
    from preserve.storage.audit import audit
    from tests.s3server import S3Server
    from tests.test_replication import _two_copy_repo

    server = S3Server()
    try:
        repo = _two_copy_repo(tmp_path, server, bucket="migration")  # a bucket of its own
        src = tmp_path / "src"
        src.mkdir()
        media.wav(src / "tape.wav", bits=24)
        aip = ingest(repo, src, Metadata("c")).aip_id
        result = apply(repo)
        assert [v["replicas"] for v in result.versions] == [["local", "cloud"]]
        assert repo.catalog.replica_locations(aip, 2) == ["cloud", "local"]
        assert audit(repo, full=True).status == "ok"
    finally:
        server.stop()


def test_an_archivist_defers_a_migration_and_the_decision_is_kept(tmp_path, monkeypatch):
    """Issue 22: files that cannot be migrated here came back on every run. `--defer`
    records a decision (who, why) as a PREMIS event in the catalog and the object's logs/;
    --plan shows it, `formats` counts it, --apply leaves the file (exit 0), --retry
    migrates it. A name not planned refuses the call before anything is recorded."""
    src = tmp_path / "src"
    src.mkdir()
    media.photo_pdf(src / "plate7.pdf")
    media.photo_pdf(src / "plate8.pdf")
    root, aip = _repo_with(tmp_path, src)
    monkeypatch.setenv("PRESERVE_USER", "Aigerim Bekova")

    said = run(root, "migrate", "--defer", "--file", "data/nosuch.pdf", "--reason", "x",
               check_code=2)
    assert "not planned for migration in this selection: data/nosuch.pdf" in said.stderr
    run(root, "migrate", "--defer", check_code=2)  # a decision needs its reason
    run(root, "migrate", "--apply", "--reason", "x", check_code=2)
    assert not [e for e in json.loads(run(root, "show", aip, "--json").stdout)["events"]
                if e["type"] == "migration"]

    [deferred] = json.loads(run(root, "migrate", aip, "--defer", "--file", "plate7.pdf",
                                "--reason", "awaiting the curator's review",
                                "--json").stdout)
    assert (deferred["source"], deferred["deferred_by"]) == ("data/plate7.pdf",
                                                             "Aigerim Bekova")
    [event] = [e for e in json.loads(run(root, "show", aip, "--json", "--events").stdout)
               ["events"] if e["type"] == "migration"]
    assert event["outcome"] == "deferred"
    assert event["detail"] == ("data/plate7.pdf (deferred by Aigerim Bekova: awaiting the "
                               "curator's review)")
    repo = Repository(root)
    logs = repo.primary_location().root / object_key(aip) / "logs"
    [log] = [p for p in logs.iterdir() if "-deferral-" in p.name]
    assert "authorizer" in log.read_text() and "Aigerim Bekova" in log.read_text()
    repo.close()

    planned = {p["source"]: p["last_outcome_unchanged"]
               for p in json.loads(run(root, "migrate", "--plan", "--json").stdout)}
    assert planned == {"data/plate7.pdf": "deferred by Aigerim Bekova: awaiting the "
                                          "curator's review", "data/plate8.pdf": None}
    assert "deferred by Aigerim Bekova" in run(root, "migrate", "--plan").stdout
    [row] = [r for r in json.loads(run(root, "formats", "--json").stdout)
             if r["rule"] == "PDF (not PDF/A)"]
    assert (row["pending"], row["deferred"], row["failed"]) == (2, 1, 0)

    done = json.loads(run(root, "migrate", "--apply", "--json").stdout)
    assert [m["source"] for m in done["migrated"]] == ["data/plate8.pdf"]
    assert [d["source"] for d in done["deferred"]] == ["data/plate7.pdf"]
    assert "1 file(s) deferred by an archivist's decision" in run(root, "migrate",
                                                                   "--apply").stdout
    [migrated] = json.loads(run(root, "migrate", "--apply", "--retry",
                                "--json").stdout)["migrated"]
    assert migrated["source"] == "data/plate7.pdf"


def test_rejections_with_one_reason_are_listed_together(tmp_path):
    """Issue 22: a long rejection list read file by file; the files that fail for one
    reason are said once, with their names, the commonest reason first."""
    src = tmp_path / "src"
    src.mkdir()
    for n in (1, 2, 3):
        media.photo_pdf(src / f"plate{n}.pdf")
    root, _aip = _repo_with(tmp_path, src)

    def pdfwrite_defaults(data):  # re-encodes the photo lossily: the images check fails
        args = data["pathways"]["ghostscript-pdfa2b"]["args"]
        args[:] = [a for a in args if not a.startswith(("-dAutoFilter", "-dColorImage",
                                                        "-dGrayImage", "-dPassThrough",
                                                        "-dDownsample"))]

    _policy(root, pdfwrite_defaults)
    said = run(root, "migrate", "--apply", check_code=1).stdout
    assert "3 derivative(s) failed" in said
    grouped = said.split("3 derivative(s) failed", 1)[1]
    assert "3 files: page 1: an image of 256x256 (8 bits, 3 components) is not in the " \
           "derivative" in " ".join(grouped.split())
    assert all(f"data/plate{n}.pdf (AIP" in grouped for n in (1, 2, 3))
    assert grouped.count("page 1: an image of 256x256") == 1


def test_sound_alone_in_a_video_container_is_not_migrated_as_video(tmp_path):
    """Issue 22: siegfried names a WMA (wmav1) as the ASF container, fmt/131, like a film
    in ASF: it fell under the video rule and failed to migrate on every run. The streams
    the stored file holds decide: video to the video rule, sound alone to its own."""
    src = tmp_path / "src"
    src.mkdir()
    media.run("ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", "sine=d=1",
              "-c:a", "wmav1", "-f", "asf", src / "interview.wma")
    media.run("ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i",
              "testsrc=d=1:s=64x48:r=5", "-c:v", "mpeg4", "-f", "asf", src / "reel.asf")
    root, _aip = _repo_with(tmp_path, src)
    rows = {r["rule"]: r for r in json.loads(run(root, "formats", "--json").stdout)
            if r["puid"] == "fmt/131"}
    assert set(rows) == {"Legacy video", "Sound alone in a video container (WMA as ASF, "
                                         "audio-only AVI or QuickTime)"}
    assert [(r["files"], r["action"], r["pending"]) for r in rows.values()] == [
        (1, "migrate", 1), (1, "keep", 0)]
    planned = json.loads(run(root, "migrate", "--plan", "--json").stdout)
    assert [p["source"] for p in planned] == ["data/reel.asf"]


@pytest.mark.parametrize("edit, named", [
    (lambda d: _rule(d, "Legacy video").update(streams="sound"), "must be video"),
    (lambda d: _rule(d, "Legacy video").pop("streams"), "no rule with 'streams: video'"),
])
def test_a_streams_rule_that_cannot_apply_is_refused_with_its_line(tmp_path, edit, named):
    root = tmp_path / "repo"
    Repository.init(root)[0].close()
    _policy(root, edit)
    with pytest.raises(ConfigError, match=named):
        load_format_policy(root / "policies" / "formats.yaml")
