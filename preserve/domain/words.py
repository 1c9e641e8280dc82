"""Words as people type them: the language layer of full-text search (issue 27).

Readers of a Kazakh, Azerbaijani, Russian and English library type what they mean, not
what the page says: capitals of the Turkic dotted and dotless I (`ƏLYAZMALARI`),
Azerbaijani without its letters (`elyazmalari`), Kazakh on a Russian keyboard
(`казакстан`), Kazakh in the 2021 Latin alphabet (`Qazaqstan`), another inflection
(`библиотеки`, `кітапхана` for `кітапханасы`). No engine's tokenizer does this
(research/recovery-access.md §6: SQLite FTS5, PostgreSQL's `simple`, Tantivy all fail
these five kinds), so both engines are given the same *keys*, made here, and asked the
same question; they only store and look up.

A word's key (`key`) is one spelling for all of them: NFC; a Turkic-aware case fold
(I, İ, ı and i are one letter); Cyrillic written in Latin letters by one table for
Russian, Kazakh and Azerbaijani Cyrillic; then every letter folded to the plain Latin
letter a reader without the keyboard types (ə→e, ä→a, ş→s, q→k, ğ→g, ñ→n, ...; the
Kazakh letters to the Russian ones a Russian keyboard has: қ→к→k, ң→н→n, ұ/ү→у→u). A
page's words are indexed by their keys and, for Russian and English, by the key of
their Snowball stem as well; a query word matches any indexed key that begins with
one of its own keys (its key, its stem's key), which finds the Kazakh and Azerbaijani
suffixes no stemmer knows (`кітапхана` → `kitaphanasy`).
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterator

# A word: letters and digits, with the combining marks that follow them (`İ` lowered is
# `i` and a combining dot above); a hyphen, apostrophe or underscore separates words.
_MARKS = "\u0300-\u036f\u0483-\u0489\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f"
WORD = re.compile(f"[^\\W_](?:[^\\W_]|[{_MARKS}])*")
# The shortest key matched as a prefix: shorter query keys match only whole words, so
# that `a` or `и` do not match every page.
MIN_PREFIX = 3

# Cyrillic in Latin letters, already folded: Russian, Kazakh and Azerbaijani Cyrillic.
# Kazakh letters go where a Russian keyboard puts them (қ as к, ң as н, ұ and ү as у, ө
# as о, ә as а, і as и, ғ as г, һ as х), so the three spellings of a Kazakh word meet.
_CYRILLIC = {
    "а": "a", "ә": "a", "б": "b", "в": "v", "г": "g", "ғ": "g", "ҝ": "g", "д": "d",
    "е": "e", "ё": "e", "э": "e", "ж": "j", "җ": "j", "з": "z", "и": "i", "й": "i",
    "і": "i", "ј": "i", "к": "k", "қ": "k", "л": "l", "м": "m", "н": "n", "ң": "n",
    "о": "o", "ө": "o", "п": "p", "р": "r", "с": "s", "т": "t", "у": "u", "ұ": "u",
    "ү": "u", "ў": "u", "ф": "f", "х": "h", "һ": "h", "ц": "c", "ч": "c", "ҹ": "c",
    "ш": "s", "щ": "s", "ъ": "", "ы": "y", "ь": "", "ю": "iu", "я": "ia",
}
# Latin letters with no decomposition to a plain one, and the 2021 Kazakh Latin letters,
# to what is typed without them.
_LATIN = {"ə": "e", "ı": "i", "ş": "s", "ç": "c", "ğ": "g", "ñ": "n", "q": "k",
          "ß": "ss", "æ": "ae", "ø": "o", "œ": "oe", "đ": "d", "ł": "l", "ū": "u"}
_FOLD = str.maketrans({**_CYRILLIC, **_LATIN})
_TURKIC_I = str.maketrans({"I": "i", "İ": "i", "ı": "i"})


def casefold(text: str) -> str:
    """NFC and a case fold in which I, İ, ı and i are one letter: Turkish and Azerbaijani
    capitals fold as their readers mean (`ƏLYAZMALARI` is `əlyazmaları`), English ones as
    ever (`I` is `i`)."""
    return unicodedata.normalize("NFC", text).translate(_TURKIC_I).casefold()


@functools.lru_cache(maxsize=200_000)
def key(word: str) -> str:
    """One word's search key: case, script and the letters a keyboard lacks folded away."""
    folded = casefold(unicodedata.normalize("NFKC", word)).translate(_FOLD)
    plain = unicodedata.normalize("NFKD", folded).casefold()  # ligatures, math letters
    return "".join(c for c in plain if c.isalnum() and not unicodedata.combining(c))


@functools.lru_cache(maxsize=1)
def _stemmers():
    import snowballstemmer

    return snowballstemmer.stemmer("russian"), snowballstemmer.stemmer("english")


@functools.lru_cache(maxsize=200_000)
def keys(word: str) -> tuple[str, ...]:
    """The keys a word is indexed by: its key, and its Snowball stem's where Russian
    (Cyrillic) or English (Latin) stemming changes it into something other than its
    beginning (`libraries` → `librari`; `библиотеки` → `библиотек` needs no key of its
    own: a query matches the words its keys begin)."""
    own = key(word)
    if not own:
        return ()
    stem = _stem(word, own)
    return (own,) if not stem or own.startswith(stem) else (own, stem)


@functools.lru_cache(maxsize=200_000)
def asked(word: str) -> tuple[str, ...]:
    """The keys a query word is asked by, any of which a page word must be or begin with:
    its stem's key where that begins its own (every word the stem begins is found), else
    both."""
    own = key(word)
    if not own:
        return ()
    stem = _stem(word, own)
    if not stem or stem == own:
        return (own,)
    return (stem,) if own.startswith(stem) and is_prefix(stem) else (own, stem)


def _stem(word: str, own: str) -> str:
    lower = casefold(word)
    russian, english = _stemmers()
    stemmer = russian if _is_cyrillic(lower) else english if lower.isascii() else None
    return key(stemmer.stemWord(lower)) if stemmer else own


def _is_cyrillic(word: str) -> bool:
    return any("\u0400" <= c <= "\u04ff" for c in word)


def words(text: str) -> Iterator[re.Match]:
    """The words of a text, with where each stands (for snippets)."""
    return WORD.finditer(text)


def index_keys(text: str) -> str:
    """A text's keys as the index stores them: space-separated, in text order, each
    word's keys in turn."""
    return " ".join(k for m in WORD.finditer(text) for k in keys(m.group()))


def query_terms(query: str) -> list[tuple[str, ...]]:
    """A query as terms, each the keys any one of which a page must hold (or begin with):
    every term must match. Words with no key (punctuation) are dropped."""
    terms, seen = [], set()
    for m in WORD.finditer(query):
        k = asked(m.group())
        if k and k not in seen:
            seen.add(k)
            terms.append(k)
    return terms


def is_prefix(query_key: str) -> bool:
    """Whether a query key also matches the longer keys it begins."""
    return len(query_key) >= MIN_PREFIX


def matches(term: tuple[str, ...], word_keys: tuple[str, ...]) -> bool:
    """Whether a page word with `word_keys` answers a query term (the snippet's test;
    the engines apply the same rule)."""
    return any(w == q or (is_prefix(q) and w.startswith(q)) for q in term for w in word_keys)
