"""Names: manifest encoding round-trips, unsafe paths are refused, collisions are found."""

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from preserve.domain.names import (
    UnsafePath,
    check_relative,
    decode_manifest_path,
    decode_object_key,
    display,
    encode_manifest_path,
    encode_object_key,
    find_collisions,
)

names = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40)


@given(names)
def test_manifest_encoding_round_trips_any_name(name):
    assert decode_manifest_path(encode_manifest_path(name)) == name


@given(names)
def test_encoded_names_have_no_line_breaks_and_only_escaped_percent(name):
    encoded = encode_manifest_path(name)
    assert "\n" not in encoded and "\r" not in encoded
    assert encoded.count("%") == name.count("%") + name.count("\n") + name.count("\r")


def test_only_percent_cr_lf_are_encoded_as_rfc_8493_requires():
    assert encode_manifest_path("a%b\nc\rd é ü") == "a%25b%0Ac%0Dd é ü"
    assert decode_manifest_path("%250A") == "%0A"  # one pass: no double decoding
    assert decode_manifest_path("%0a%0d") == "\n\r"  # lowercase escapes too
    assert decode_manifest_path("%41") == "%41"  # other escapes are literal text


@pytest.mark.parametrize("bad", ["", "/etc/passwd", "a/../../b", "..", "a//b", "./a", "a/.",
                                 "C:\\x", "\\\\server\\share", "a\x00b"])
def test_unsafe_relative_paths_are_refused(bad):
    with pytest.raises(UnsafePath):
        check_relative(bad)


@given(st.lists(st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="/\x00"),
                        min_size=1, max_size=10), min_size=1, max_size=6))
def test_check_relative_accepts_exactly_the_paths_without_dot_components(parts):
    path = "/".join(parts)
    if any(p in (".", "..") for p in parts) or path.startswith("\\\\") or (
            len(path) > 2 and path[1] == ":" and path[2] in "\\/" and path[0].isascii()
            and path[0].isalpha()):  # a drive letter is A-Z: "À:/0" is a relative name
        with pytest.raises(UnsafePath):
            check_relative(path)
    else:
        assert check_relative(path) == path  # returned unchanged, never normalised


def test_nfc_and_nfd_spellings_collide_and_are_reported():
    nfc = unicodedata.normalize("NFC", "café.txt")
    nfd = unicodedata.normalize("NFD", "café.txt")
    unicode_groups, case_groups = find_collisions([nfc, nfd, "other.txt"])
    assert unicode_groups == [sorted([nfc, nfd])]
    assert case_groups == []


def test_case_collisions_include_parent_folders():
    unicode_groups, case_groups = find_collisions(["Photos/a.jpg", "photos/b.jpg", "x.txt"])
    assert unicode_groups == []
    assert case_groups == [["Photos", "photos"]]


@given(st.lists(names, max_size=20, unique=True))
def test_collision_groups_only_hold_names_that_really_merge(paths):
    paths = [p.replace("/", "_") for p in paths]
    unicode_groups, case_groups = find_collisions(paths)
    for group in unicode_groups:
        assert len({unicodedata.normalize("NFC", p) for p in group}) == 1
    for group in case_groups:
        assert len({unicodedata.normalize("NFC", unicodedata.normalize("NFD", p).casefold())
                    for p in group}) == 1


@given(names)
def test_object_keys_round_trip_and_carry_no_control_characters(name):
    key = encode_object_key(name)
    assert decode_object_key(key) == name
    assert not any(ord(c) < 32 or 127 <= ord(c) <= 159 for c in key)


@given(st.text())
def test_display_escapes_exactly_controls_and_surrogates(name):
    shown = display(name)
    assert not any(unicodedata.category(ch) in ("Cc", "Cs") for ch in shown)
    if not any(unicodedata.category(ch) in ("Cc", "Cs") for ch in name):
        assert shown == name  # the fast path returns the name itself
