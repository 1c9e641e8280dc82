"""Tag-file formats: bag-info and manifests parse back to what was written."""

from hypothesis import given
from hypothesis import strategies as st

from preserve.domain.bag import (
    format_bag_info,
    format_manifest,
    parse_bag_info,
    parse_manifest,
    split_lines,
)

labels = st.text(st.characters(min_codepoint=33, max_codepoint=126, blacklist_characters=":"),
                 min_size=1, max_size=20)
values = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), max_size=40).map(
    str.strip)


@given(st.lists(st.tuples(labels, st.lists(values, min_size=1, max_size=3).map("\n".join)),
                max_size=10))
def test_bag_info_round_trips_including_multi_line_values(fields):
    items, errors = parse_bag_info(format_bag_info(fields))
    assert errors == []
    # values survive line by line (surrounding blanks of each line and a final
    # line break are not significant in bag-info.txt)
    expected = [(label, "\n".join(line.strip() for line in (split_lines(value) or [""])))
                for label, value in fields]
    assert [(i.label, i.value) for i in items] == expected


@given(st.lists(st.tuples(st.text(st.characters(blacklist_categories=("Cs",)), min_size=1,
                                  max_size=30).map(lambda s: "data/" + s),
                          st.from_regex(r"[0-9a-f]{64}", fullmatch=True)), max_size=10))
def test_manifest_round_trips_any_file_name(entries):
    parsed = parse_manifest(format_manifest(entries))
    assert parsed.errors == []
    assert [(e.path, e.digest) for e in parsed.entries] == entries


def test_manifest_accepts_tabs_and_crlf_and_reports_malformed_lines():
    parsed = parse_manifest("abc123\tdata/a\r\nnot a line\r\n\r\nABCDEF  data/b c\n")
    assert [(e.path, e.digest) for e in parsed.entries] == [("data/a", "abc123"),
                                                            ("data/b c", "abcdef")]
    assert [n for n, _ in parsed.errors] == [2, 3]
