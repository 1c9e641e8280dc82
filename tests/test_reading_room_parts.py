"""The reading room's small parts (issue 28): the reader's language, the staff file,
the policy's access section, a role-access location."""

from __future__ import annotations

import base64
import os
import stat

import pytest
from hypothesis import given
from hypothesis import strategies as st

from preserve.access.messages import _WORDS, LANGUAGES, choose, translator
from preserve.access.staff import Staff, add_user, read_users, remove_user
from preserve.domain.policy import load_policy
from preserve.errors import BadArgument, ConfigError


@pytest.mark.parametrize("asked, cookie, accept, chosen", [
    (None, None, None, "en"),
    (None, None, "ru-RU,ru;q=0.9,en-US;q=0.8", "ru"),
    (None, None, "de-DE, kk;q=0.5, az;q=0.7", "az"),
    (None, None, "en;q=0.1, kk", "kk"),
    (None, None, "kk;q=0, ru;q=0.2", "ru"),  # q=0: not wanted at all
    (None, None, "fr, de", "en"),
    (None, "kk", "ru", "kk"),  # the reader's earlier choice beats the browser's
    ("az", "kk", "ru", "az"),  # and the address beats both
    ("xx", None, "ru", "ru"),  # a language we do not have is ignored
])
def test_the_readers_language(asked, cookie, accept, chosen):
    assert choose(asked, cookie, accept) == chosen


@given(st.text(max_size=200), st.one_of(st.none(), st.text(max_size=5)))
def test_any_accept_language_header_gives_a_language_we_have(accept, cookie):
    assert choose(None, cookie, accept) in LANGUAGES


def test_every_sentence_has_every_language_and_keeps_its_placeholders():
    for english, translations in _WORDS.items():
        assert len(translations) == 3 and all(translations), english
        for said in translations:
            for placeholder in ("{date}", "{count}", "{query}", "{page}", "{user}"):
                assert (placeholder in english) == (placeholder in said), (english, said)
    assert translator("kk")("Opens on {date}.", date="2086-01-01") == "2086-01-01 ашылады."
    assert translator("en")("Not in the table") == "Not in the table"


def test_the_staff_file(tmp_path):
    path = tmp_path / "staff.users"
    with pytest.raises(BadArgument):
        add_user(path, "archivist", "short")
    with pytest.raises(BadArgument):
        add_user(path, "no:colons", "a long enough password")
    assert add_user(path, "archivist", "a long enough password") is True
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert "a long enough password" not in path.read_text()
    staff = Staff(path)
    header = "Basic " + base64.b64encode(b"archivist:a long enough password").decode()
    assert staff.user(header) == "archivist"
    assert staff.user(header) == "archivist"  # remembered
    assert staff.user("Basic " + base64.b64encode(b"archivist:wrong").decode()) is None
    assert staff.user("Basic !!!not base64") is None
    assert staff.user("Bearer x") is None and staff.user(None) is None
    assert add_user(path, "archivist", "another long password") is False
    assert staff.user(header) is None  # the file changed: the old password no longer works
    assert remove_user(path, "archivist") and read_users(path) == {}
    path.write_text("archivist:plaintext\n")
    with pytest.raises(ConfigError, match="line 1"):
        read_users(path)


def test_the_access_section_of_a_policy_is_checked(tmp_path):
    policy = tmp_path / "p.yaml"
    policy.write_text("access:\n  copies: {sound: mp3, video: webm}\n  masters: [public-domain]\n"
                      "  closed_items: metadata\n")
    loaded = load_policy(policy).access
    assert loaded.copies == {"documents": "pdfa", "images": "iiif", "sound": "mp3",
                             "video": "webm"}
    assert loaded.masters == ["public-domain"] and loaded.closed_items == "metadata"
    for wrong in ("access:\n  copies: {sound: wav}\n", "access:\n  masters: [everything]\n",
                  "access:\n  closed_items: shown\n", "access:\n  copies: {books: pdfa}\n"):
        policy.write_text(wrong)
        with pytest.raises(ConfigError):
            load_policy(policy)
