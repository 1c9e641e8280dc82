"""Strict RFC 8493 validation: each violated MUST is an error naming file and line."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import bagit
import pytest

from preserve.ingest.validation import validate_bag


@pytest.fixture
def good_bag(tmp_path) -> Path:
    bag = tmp_path / "bag"
    (bag / "sub").mkdir(parents=True)
    (bag / "a.txt").write_text("alpha\n")
    (bag / "sub" / "b.txt").write_text("beta\n")
    bagit.make_bag(str(bag), {"Contact-Name": "Ada"}, checksums=["sha256", "sha512"])
    return bag


def codes(report, severity="error"):
    return sorted({f.code for f in report.findings if f.severity == severity})


def find(report, code):
    return next(f for f in report.findings if f.code == code)


def test_a_bagit_python_bag_is_valid(good_bag):
    report = validate_bag(good_bag)
    assert report.valid and report.version == "0.97"
    assert report.files_hashed == 2 + 4  # payload + tag files listed in tag manifests
    assert report.algorithms == ["sha256", "sha512"]


def test_corrupt_payload_is_an_error_naming_manifest_and_line(good_bag):
    (good_bag / "data" / "a.txt").write_text("ALPHA\n")
    report = validate_bag(good_bag)
    assert not report.valid and codes(report) == ["E090"]
    mismatches = [f for f in report.errors if f.code == "E090"]
    assert {f.file for f in mismatches} == {"manifest-sha256.txt", "manifest-sha512.txt"}
    assert all(f.line and "data/a.txt" in f.message for f in mismatches)


def test_fast_mode_checks_structure_without_hashing(good_bag):
    (good_bag / "data" / "a.txt").write_text("ALPHA\n")
    report = validate_bag(good_bag, check_fixity=False)
    assert report.valid and report.files_hashed == 0


def test_missing_and_unlisted_files(good_bag):
    (good_bag / "data" / "sub" / "b.txt").unlink()
    (good_bag / "data" / "new.txt").write_text("new")
    report = validate_bag(good_bag)
    assert "E047" in codes(report) and "E050" in codes(report)
    assert find(report, "E050").file == "data/new.txt"
    assert "E073" in codes(report)  # Payload-Oxum no longer matches


def test_manifest_path_escaping_the_bag_is_an_error_and_never_opened(good_bag, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret")
    os.chmod(secret, 0)  # were it opened, reading would fail differently (as root it would not)
    with open(good_bag / "manifest-sha256.txt", "a") as f:
        f.write("0" * 64 + "  data/../../secret.txt\n")
        f.write("0" * 64 + "  /etc/passwd\n")
    report = validate_bag(good_bag)
    unsafe = [f for f in report.errors if f.code == "E042"]
    assert len(unsafe) == 2 and all(f.file == "manifest-sha256.txt" for f in unsafe)
    assert [f.line for f in unsafe] == [3, 4]
    assert report.files_hashed == 6  # only the real files were read


def test_bag_declaration_rules(good_bag):
    decl = good_bag / "bagit.txt"
    decl.write_bytes(b"\xef\xbb\xbfBagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n")
    assert "E011" in codes(validate_bag(good_bag))
    decl.write_text("BagIt-Version: 1.0\n")
    assert "E013" in codes(validate_bag(good_bag))
    decl.write_text("Version: 1.0\nTag-File-Character-Encoding: UTF-8\n")
    assert "E014" in codes(validate_bag(good_bag))
    decl.unlink()
    assert codes(validate_bag(good_bag)) == ["E010"]


def test_missing_payload_directory_and_manifest(tmp_path):
    bag = tmp_path / "b"
    bag.mkdir()
    (bag / "bagit.txt").write_text("BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n")
    assert codes(validate_bag(bag)) == ["E020", "E040"]


def test_malformed_lines_are_reported_with_line_numbers(good_bag):
    with open(good_bag / "manifest-sha256.txt", "a") as f:
        f.write("this is not a manifest line\n")
    with open(good_bag / "bag-info.txt", "a") as f:
        f.write("no colon here\n")
    report = validate_bag(good_bag)
    assert find(report, "E041").file == "manifest-sha256.txt" and find(report, "E041").line == 3
    assert find(report, "E070").file == "bag-info.txt"


def test_tampered_tag_file_is_caught_by_the_tag_manifest(good_bag):
    with open(good_bag / "bag-info.txt", "a") as f:
        f.write("Extra: added later\n")
    report = validate_bag(good_bag)
    assert any(f.code == "E090" and "bag-info.txt" in f.message for f in report.errors)


def test_warnings_do_not_make_a_bag_invalid(good_bag):
    for tm in good_bag.glob("tagmanifest-*.txt"):
        tm.unlink()
    (good_bag / "bagit.txt").write_text("BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n")
    with open(good_bag / "bag-info.txt", "a") as f:
        f.write("Bagging-Date: 23 November 2026\n")
    report = validate_bag(good_bag)
    assert report.valid
    assert {"W062", "W071", "W074"} <= set(codes(report, "warning"))


def test_weak_algorithms_warned_in_1_0_bags(tmp_path):
    bag = tmp_path / "md5bag"
    bag.mkdir()
    (bag / "x.txt").write_text("x")
    bagit.make_bag(str(bag), checksums=["md5"])
    (bag / "bagit.txt").write_text("BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n")
    b = bagit.Bag(str(bag))
    b.save()  # regenerate tag manifests after the declaration change
    report = validate_bag(bag)
    assert report.valid and "W041" in codes(report, "warning")


def test_symlinks_in_a_bag_are_errors_and_not_followed(good_bag):
    (good_bag / "data" / "link").symlink_to("/etc/passwd")
    report = validate_bag(good_bag)
    assert find(report, "E030").file == "data/link"


def test_fetch_items_not_present_make_the_bag_incomplete(good_bag):
    (good_bag / "fetch.txt").write_text("https://example.org/x 10 data/remote.bin\n"
                                        "https://example.org/y 10 ../escape\n")
    report = validate_bag(good_bag)
    assert "E082" in codes(report) and "E081" in codes(report)


def test_duplicate_entries_and_directories_in_manifests(good_bag):
    with open(good_bag / "manifest-sha256.txt", "a") as f:
        line = (good_bag / "manifest-sha256.txt").read_text().splitlines()[0]
        f.write("0" * 64 + line[64:] + "\n")  # the same path again, another digest
        f.write("0" * 64 + "  data/sub\n")
    report = validate_bag(good_bag)
    assert {"E045", "E046"} <= set(codes(report))


def test_unicode_normalisation_mismatch_is_a_warning(tmp_path):
    bag = tmp_path / "uni"
    bag.mkdir()
    (bag / "caf\u00e9.txt").write_text("x")
    bagit.make_bag(str(bag), checksums=["sha256"])
    nfc = bag / "data" / "caf\u00e9.txt"
    shutil.move(nfc, bag / "data" / "cafe\u0301.txt")  # as a normalising copy would
    report = validate_bag(bag)
    assert "W051" in codes(report, "warning") and report.valid


def test_not_a_directory(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    assert codes(validate_bag(f)) == ["E001"]


def test_stricter_than_bagit_python_on_directory_links(good_bag, tmp_path):
    """bagit-python leaves a linked directory out of its completeness check and calls the
    bag valid; its files are in no manifest, so nothing protects them. We say so."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "unprotected.txt").write_text("not in any manifest")
    (good_bag / "data" / "linked").symlink_to(elsewhere, target_is_directory=True)
    bagit.Bag(str(good_bag)).validate()  # bagit-python: no complaint
    report = validate_bag(good_bag)
    assert not report.valid and find(report, "E030").file == "data/linked"


def _plain_bag(root: Path, files: int, newline: str = "\n") -> Path:
    """A BagIt 1.0 bag of `files` small files, written directly (fast for many files)."""
    import hashlib

    (root / "data").mkdir(parents=True)
    (root / "bagit.txt").write_text("BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n")
    lines = []
    for i in range(files):
        body = f"file {i}\n".encode()
        (root / "data" / f"f{i:06d}.txt").write_bytes(body)
        lines.append(f"{hashlib.sha256(body).hexdigest()}  data/f{i:06d}.txt")
    (root / "manifest-sha256.txt").write_bytes(
        (newline.join(lines) + newline).encode())
    return root


def test_manifests_with_cr_line_endings_are_read_line_by_line(tmp_path):
    report = validate_bag(_plain_bag(tmp_path / "bag", 3, newline="\r"))
    assert report.valid and report.files_hashed == 3, report.findings


def test_memory_does_not_grow_with_the_number_of_files(tmp_path):
    """What the validator knows about all files lives in a scratch database: 5x the files
    must not mean more Python memory (dicts of manifest lines took ~1.4 KB a file)."""
    import tracemalloc

    peaks = []
    for files in (2_000, 10_000):
        bag = _plain_bag(tmp_path / f"bag{files}", files)
        tracemalloc.start()
        report = validate_bag(bag)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert report.valid and report.files_hashed == files, report.findings[:3]
    assert peaks[1] - peaks[0] < 2 << 20, peaks  # was 6.8 MB before the scratch database
