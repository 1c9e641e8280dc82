"""The reading room's words in the readers' languages (issue 28): Kazakh, Azerbaijani,
Russian and English.

A page asks `translator(language)` for a function that gives a sentence in that
language, English where a translation is missing; the language is the reader's choice
(`?lang=kk`, kept in a cookie), else the best of the browser's Accept-Language, else
English. Placeholders ({date}, {count}...) are filled after translation.
"""

from __future__ import annotations

from collections.abc import Callable

LANGUAGES = {"kk": "Қазақша", "az": "Azərbaycanca", "ru": "Русский", "en": "English"}
DEFAULT = "en"

# English -> (Kazakh, Azerbaijani, Russian)
_WORDS: dict[str, tuple[str, str, str]] = {
    "Reading room": ("Оқу залы", "Oxu zalı", "Читальный зал"),
    "Search": ("Іздеу", "Axtar", "Поиск"),
    "A word, a name, a phrase": ("Сөз, есім, сөз тіркесі", "Söz, ad, ifadə",
                                 "Слово, имя, фраза"),
    "Collections": ("Топтамалар", "Kolleksiyalar", "Коллекции"),
    "Nothing is open to readers yet.": ("Оқырмандарға әзірге ештеңе ашық емес.",
                                        "Hələ oxucular üçün açıq heç nə yoxdur.",
                                        "Пока ничего не открыто для читателей."),
    "Open to readers.": ("Оқырмандарға ашық.", "Oxucular üçün açıqdır.",
                         "Открыто для читателей."),
    "Open to staff only.": ("Тек қызметкерлерге ашық.", "Yalnız əməkdaşlar üçün açıqdır.",
                            "Открыто только для сотрудников."),
    "Closed to readers.": ("Оқырмандарға жабық.", "Oxucular üçün bağlıdır.",
                           "Закрыто для читателей."),
    "Opens on {date}.": ("{date} ашылады.", "{date} tarixində açılır.",
                         "Откроется {date}."),
    "No date is set on which it opens.": ("Ашылатын күні белгіленбеген.",
                                          "Açılma tarixi müəyyən edilməyib.",
                                          "Дата открытия не установлена."),
    "Identifier": ("Сәйкестендіргіш", "İdentifikator", "Идентификатор"),
    "Copies to read": ("Оқуға арналған көшірмелер", "Oxumaq üçün nüsxələr",
                       "Копии для чтения"),
    "No copy to read has been made of this item yet.": (
        "Бұл нысанның оқуға арналған көшірмесі әлі жасалмаған.",
        "Bu material üçün hələ oxu nüsxəsi hazırlanmayıb.",
        "Копия для чтения этого документа ещё не сделана."),
    "View the pages": ("Беттерді қарау", "Səhifələrə bax", "Смотреть страницы"),
    "Not available": ("Қолжетімсіз", "Əlçatan deyil", "Недоступно"),
    "There is nothing open to readers here.": ("Мұнда оқырмандарға ашық ештеңе жоқ.",
                                               "Burada oxucular üçün açıq heç nə yoxdur.",
                                               "Здесь нет ничего открытого для читателей."),
    "{count} found for “{query}”": ("«{query}» бойынша табылғаны: {count}",
                                    "“{query}” üzrə tapılan: {count}",
                                    "По запросу «{query}» найдено: {count}"),
    "Type a word, a name or a phrase.": ("Сөзді, есімді немесе сөз тіркесін жазыңыз.",
                                         "Söz, ad və ya ifadə yazın.",
                                         "Введите слово, имя или фразу."),
    "the item's description": ("нысанның сипаттамасы", "materialın təsviri",
                               "описание документа"),
    "page {page}": ("{page}-бет", "səhifə {page}", "страница {page}"),
    "Original (preservation master)": ("Түпнұсқа (сақтау данасы)",
                                       "Orijinal (saxlama nüsxəsi)",
                                       "Оригинал (эталонная копия)"),
    "Rights": ("Құқықтар", "Hüquqlar", "Права"),
    "Staff sign-in": ("Қызметкерлердің кіруі", "Əməkdaşların girişi",
                      "Вход для сотрудников"),
    "Signed in as {user}": ("{user} ретінде кірдіңіз", "{user} kimi daxil olmusunuz",
                            "Вы вошли как {user}"),
    "The page viewer needs JavaScript; the copies can be downloaded without it.": (
        "Беттерді қарау үшін JavaScript қажет; көшірмелерді онсыз да жүктеп алуға болады.",
        "Səhifə baxıcısı JavaScript tələb edir; nüsxələri onsuz da yükləmək olar.",
        "Для просмотра страниц нужен JavaScript; копии можно скачать и без него."),
    "The page viewer is not installed on this server.": (
        "Бұл серверде беттерді қарау құралы орнатылмаған.",
        "Bu serverdə səhifə baxıcısı quraşdırılmayıb.",
        "Средство просмотра страниц на этом сервере не установлено."),
    "Language": ("Тіл", "Dil", "Язык"),
    "Back to the item": ("Нысанға оралу", "Materiala qayıt", "Назад к документу"),
    "Pages": ("Беттер", "Səhifələr", "Страницы"),
    # bag-info labels shown on an item's page
    "Title": ("Атауы", "Başlıq", "Заглавие"),
    "Creator": ("Авторы", "Müəllif", "Автор"),
    "External-Identifier": ("Сыртқы сәйкестендіргіш", "Xarici identifikator",
                            "Внешний идентификатор"),
    "External-Description": ("Сипаттамасы", "Təsvir", "Описание"),
    "Source-Organization": ("Ұйым", "Təşkilat", "Организация"),
    "Preserve-Collection": ("Топтама", "Kolleksiya", "Коллекция"),
}
_COLUMN = {"kk": 0, "az": 1, "ru": 2}


def translator(language: str) -> Callable[..., str]:
    """A function giving `text` in `language`, its {placeholders} filled."""
    column = _COLUMN.get(language)

    def translate(text: str, **values) -> str:
        words = _WORDS.get(text)
        said = words[column] if words and column is not None else text
        return said.format(**values) if values else said

    return translate


def choose(asked: str | None, cookie: str | None, accept: str | None) -> str:
    """The reader's language: asked in the address, else kept in the cookie, else the
    browser's most wanted one we have, else English."""
    for choice in (asked, cookie):
        if choice in LANGUAGES:
            return choice
    wanted = []
    for n, part in enumerate((accept or "").split(",")):
        tag, _, params = part.strip().partition(";")
        weight = 1.0
        if params.strip().startswith("q="):
            try:
                weight = float(params.strip()[2:])
            except ValueError:
                weight = 0.0
        primary = tag.strip().lower().split("-")[0]
        if primary in LANGUAGES and weight > 0:
            wanted.append((-weight, n, primary))
    return min(wanted)[2] if wanted else DEFAULT
