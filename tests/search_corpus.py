"""A small multilingual corpus and its relevance set (issue 27): texts written here, in
Kazakh, Azerbaijani, Russian and English, and over 200 queries of the kinds readers type:
the word as printed, in capitals (the Turkic dotted and dotless I), Azerbaijani without
its letters, Kazakh on a Russian keyboard, Kazakh in the 2021 Latin alphabet, and another
inflection (the stem or the dictionary form). Each query's answer is the one document
holding the word. The spellings are made by this file's own tables, not by preserve's.
"""

from __future__ import annotations

# (form in the document, the form a reader asks for: stem or dictionary form)
KAZAKH = [("кітапханасы", "кітапхана"), ("қолжазбалары", "қолжазба"),
          ("мұрағаттағы", "мұрағат"), ("университетінің", "университет"),
          ("Қазақстанның", "Қазақстан"), ("әдебиетінде", "әдебиет"),
          ("тарихшыларының", "тарихшы"), ("көшпенділердің", "көшпенді"),
          ("шежіресі", "шежіре"), ("жырларының", "жыр"), ("өлеңдері", "өлең"),
          ("ғалымдары", "ғалым"), ("даңғылында", "даңғыл"), ("ұлттық", "ұлт"),
          ("Түркістанда", "Түркістан")]
AZERBAIJANI = [("kitabxanası", "kitabxana"), ("əlyazmaları", "əlyazma"),
               ("arxivində", "arxiv"), ("universitetinin", "universitet"),
               ("Azərbaycanın", "Azərbaycan"), ("ədəbiyyatında", "ədəbiyyat"),
               ("tarixçiləri", "tarixçi"), ("şairlərinin", "şair"), ("dastanları", "dastan"),
               ("qəzetlərində", "qəzet"), ("İçərişəhərdə", "İçərişəhər"),
               ("kəndlərində", "kənd"), ("məktəblərində", "məktəb"), ("nəğmələri", "nəğmə"),
               ("xalçaçılığı", "xalça")]
RUSSIAN = [("библиотеки", "библиотека"), ("рукописями", "рукопись"), ("архивах", "архив"),
           ("университета", "университет"), ("летописей", "летопись"),
           ("писателями", "писатель"), ("журналов", "журнал"),
           ("переводчиков", "переводчик"), ("губерниях", "губерния"),
           ("монастырях", "монастырь"), ("грамотами", "грамота"),
           ("экспедиции", "экспедиция"), ("типографии", "типография"),
           ("сказаний", "сказание"), ("историков", "историк")]
ENGLISH = [("libraries", "library"), ("manuscripts", "manuscript"), ("archives", "archive"),
           ("universities", "university"), ("chronicles", "chronicle"),
           ("translators", "translator"), ("newspapers", "newspaper"),
           ("villages", "village"), ("expeditions", "expedition"), ("printing", "printed"),
           ("monasteries", "monastery"), ("historians", "historian"),
           ("engravings", "engraving"), ("catalogued", "catalogue"),
           ("collections", "collection")]

FILLER = {
    "kk": "Бұл құжат қорда сақталады және оқырмандарға арналған. ",
    "az": "Bu sənəd fondda saxlanılır və oxucular üçün nəzərdə tutulub. ",
    "ru": "Этот документ хранится в фонде и предназначен для читателей. ",
    "en": "This document is kept in the fund and is meant for readers. ",
}
WORDS = {"kk": KAZAKH, "az": AZERBAIJANI, "ru": RUSSIAN, "en": ENGLISH}
PER_DOCUMENT = 3  # target words a document holds

# Kazakh typed on a Russian keyboard: its own letters as the nearest Russian ones.
RUSSIAN_KEYBOARD = str.maketrans("қңғүұөәіһҚҢҒҮҰӨӘІҺ", "кнгууоаихКНГУУОАИХ")
# Kazakh Cyrillic in the 2021 Latin alphabet (lower case; capitals by their own letter).
KAZAKH_LATIN = {
    "а": "a", "ә": "ä", "б": "b", "в": "v", "г": "g", "ғ": "ğ", "д": "d", "е": "e",
    "ж": "j", "з": "z", "и": "i", "й": "i", "к": "k", "қ": "q", "л": "l", "м": "m",
    "н": "n", "ң": "ñ", "о": "o", "ө": "ö", "п": "p", "р": "r", "с": "s", "т": "t",
    "у": "u", "ұ": "ū", "ү": "ü", "ф": "f", "х": "h", "һ": "h", "ч": "ç", "ш": "ş",
    "ы": "y", "і": "ı", "ь": "", "ъ": "", "э": "e", "ю": "iu", "я": "ia",
}
# Azerbaijani typed without its letters.
AZ_ASCII = str.maketrans("əıöüşçğƏIÖÜŞÇĞİ", "eiouscgEIOUSCGI")


def kazakh_latin(word: str) -> str:
    out = "".join(KAZAKH_LATIN.get(c.lower(), c.lower()) for c in word)
    return out[:1].upper() + out[1:] if word[:1].isupper() else out


def turkic_upper(word: str) -> str:
    """Capitals as Turkish and Azerbaijani write them: i is İ, ı is I."""
    return word.replace("i", "İ").replace("ı", "I").upper()


def documents() -> dict[str, str]:
    """{file name: text}: each language's words, PER_DOCUMENT to a document, among
    sentences every document of the language shares."""
    docs = {}
    for lang, words in WORDS.items():
        for n in range(0, len(words), PER_DOCUMENT):
            chosen = [w for w, _ in words[n:n + PER_DOCUMENT]]
            body = FILLER[lang] * 3 + " ".join(f"{w}." for w in chosen) + " " + FILLER[lang]
            docs[f"{lang}-{n // PER_DOCUMENT + 1:02d}.txt"] = body
    return docs


def queries() -> list[tuple[str, str, str]]:
    """(kind, query, the document that answers it)."""
    where = {}
    for name, body in documents().items():
        for lang, words in WORDS.items():
            for word, _ in words:
                if f"{word}." in body and name.startswith(lang):
                    where[word] = name
    out = []
    for lang, words in WORDS.items():
        for word, asked in words:
            doc = where[word]
            out.append((f"{lang} as printed", word.lower(), doc))
            out.append((f"{lang} capitals",
                        turkic_upper(word) if lang == "az" else word.upper(), doc))
            out.append((f"{lang} inflection", asked, doc))
            if lang == "kk":
                out.append(("kk Russian keyboard", word.translate(RUSSIAN_KEYBOARD), doc))
                out.append(("kk Latin script", kazakh_latin(word), doc))
            if lang == "az":
                out.append(("az without its letters", word.translate(AZ_ASCII).lower(), doc))
    return out
