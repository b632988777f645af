"""A seeded English→German corpus generated from a small grammar, so everything runs offline.

It is built to need attention: German articles and adjective endings agree with the
noun's gender, number and case, numbers put units before tens ("twenty-one" →
"einundzwanzig"), and subordinate clauses move the verb to the end.
"""

import random
from typing import Iterator

# English singular, English plural, German singular, German plural, gender (m/f/n).
NOUNS = [
    ("dog", "dogs", "Hund", "Hunde", "m"),
    ("cat", "cats", "Katze", "Katzen", "f"),
    ("child", "children", "Kind", "Kinder", "n"),
    ("man", "men", "Mann", "Männer", "m"),
    ("woman", "women", "Frau", "Frauen", "f"),
    ("house", "houses", "Haus", "Häuser", "n"),
    ("book", "books", "Buch", "Bücher", "n"),
    ("bird", "birds", "Vogel", "Vögel", "m"),
    ("car", "cars", "Auto", "Autos", "n"),
    ("teacher", "teachers", "Lehrer", "Lehrer", "m"),
    ("apple", "apples", "Apfel", "Äpfel", "m"),
    ("table", "tables", "Tisch", "Tische", "m"),
    ("flower", "flowers", "Blume", "Blumen", "f"),
    ("girl", "girls", "Mädchen", "Mädchen", "n"),
]
ADJECTIVES = [("big", "groß"), ("small", "klein"), ("old", "alt"), ("young", "jung"),
              ("red", "rot"), ("happy", "glücklich"), ("new", "neu")]
# English 3rd singular, English plural, German 3rd singular, German plural.
VERBS = [("sees", "see", "sieht", "sehen"), ("likes", "like", "mag", "mögen"),
         ("finds", "find", "findet", "finden"), ("buys", "buy", "kauft", "kaufen"),
         ("hears", "hear", "hört", "hören"), ("draws", "draw", "zeichnet", "zeichnen")]
CLAUSE_OPENERS = [("I know that", "ich weiß, dass"), ("she says that", "sie sagt, dass"),
                  ("we think that", "wir denken, dass"), ("they hope that", "sie hoffen, dass")]

DEFINITE = {"nom": {"m": "der", "f": "die", "n": "das", "pl": "die"},
            "acc": {"m": "den", "f": "die", "n": "das", "pl": "die"},
            "dat": {"m": "dem", "f": "der", "n": "dem", "pl": "den"}}
INDEFINITE = {"nom": {"m": "ein", "f": "eine", "n": "ein"},
              "acc": {"m": "einen", "f": "eine", "n": "ein"},
              "dat": {"m": "einem", "f": "einer", "n": "einem"}}
# Adjective endings after a definite article (weak), an indefinite one (mixed), or a bare number (strong plural).
WEAK = {"nom": {"m": "e", "f": "e", "n": "e", "pl": "en"},
        "acc": {"m": "en", "f": "e", "n": "e", "pl": "en"},
        "dat": {"m": "en", "f": "en", "n": "en", "pl": "en"}}
MIXED = {"nom": {"m": "er", "f": "e", "n": "es"},
         "acc": {"m": "en", "f": "e", "n": "es"},
         "dat": {"m": "en", "f": "en", "n": "en"}}
STRONG_PLURAL = {"nom": "e", "acc": "e", "dat": "en"}

UNITS_EN = ["", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
UNITS_DE = ["", "ein", "zwei", "drei", "vier", "fünf", "sechs", "sieben", "acht", "neun"]
TEENS_EN = ["ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen",
            "seventeen", "eighteen", "nineteen"]
TEENS_DE = ["zehn", "elf", "zwölf", "dreizehn", "vierzehn", "fünfzehn", "sechzehn",
            "siebzehn", "achtzehn", "neunzehn"]
TENS_EN = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
TENS_DE = ["", "", "zwanzig", "dreißig", "vierzig", "fünfzig", "sechzig", "siebzig", "achtzig", "neunzig"]


def number_words(n: int) -> tuple[str, str]:
    """English and German words for 2 <= n <= 99; German puts the unit first: 21 → einundzwanzig."""
    if n < 10:
        return UNITS_EN[n], UNITS_DE[n]
    if n < 20:
        return TEENS_EN[n - 10], TEENS_DE[n - 10]
    tens, units = divmod(n, 10)
    if units == 0:
        return TENS_EN[tens], TENS_DE[tens]
    return f"{TENS_EN[tens]}-{UNITS_EN[units]}", f"{UNITS_DE[units]}und{TENS_DE[tens]}"


def _dative_plural(noun: str) -> str:
    return noun if noun.endswith(("n", "s")) else noun + "n"


def _noun_phrase(rng: random.Random, case: str) -> tuple[str, str, bool]:
    """A noun phrase in `case`; returns English, German and whether it is plural."""
    en_sg, en_pl, de_sg, de_pl, gender = rng.choice(NOUNS)
    adjective = rng.choice(ADJECTIVES) if rng.random() < 0.5 else None
    kind = rng.choice(["definite", "indefinite", "definite_plural", "number"])
    plural = kind in ("definite_plural", "number")
    de_noun = (_dative_plural(de_pl) if case == "dat" else de_pl) if plural else de_sg
    en_words, de_words = [], []
    if kind == "definite":
        en_words.append("the"), de_words.append(DEFINITE[case][gender])
        ending = WEAK[case][gender]
    elif kind == "indefinite":
        en_words.append("an" if (adjective or (en_sg,))[0][0] in "aeiou" else "a")
        de_words.append(INDEFINITE[case][gender])
        ending = MIXED[case][gender]
    elif kind == "definite_plural":
        en_words.append("the"), de_words.append(DEFINITE[case]["pl"])
        ending = WEAK[case]["pl"]
    else:
        en_number, de_number = number_words(rng.randint(2, 99))
        en_words.append(en_number), de_words.append(de_number)
        ending = STRONG_PLURAL[case]
    if adjective:
        en_words.append(adjective[0]), de_words.append(adjective[1] + ending)
    en_words.append(en_pl if plural else en_sg), de_words.append(de_noun)
    return " ".join(en_words), " ".join(de_words), plural


def _sentence(rng: random.Random) -> tuple[str, str]:
    subject_en, subject_de, plural = _noun_phrase(rng, "nom")
    object_en, object_de, _ = _noun_phrase(rng, "acc")
    verb_en_sg, verb_en_pl, verb_de_sg, verb_de_pl = rng.choice(VERBS)
    verb_en, verb_de = (verb_en_pl, verb_de_pl) if plural else (verb_en_sg, verb_de_sg)
    with_en = with_de = ""
    if rng.random() < 0.3:
        companion_en, companion_de, _ = _noun_phrase(rng, "dat")
        with_en, with_de = f" with {companion_en}", f" mit {companion_de}"
    if rng.random() < 0.4:
        opener_en, opener_de = rng.choice(CLAUSE_OPENERS)
        # Verb-final order in the German subordinate clause.
        en = f"{opener_en} {subject_en} {verb_en} {object_en}{with_en}."
        de = f"{opener_de} {subject_de} {object_de}{with_de} {verb_de}."
    else:
        en = f"{subject_en} {verb_en} {object_en}{with_en}."
        de = f"{subject_de} {verb_de} {object_de}{with_de}."
    return en[0].upper() + en[1:], de[0].upper() + de[1:]


def generate_pairs(size: int, seed: int) -> Iterator[tuple[str, str]]:
    """`size` (English, German) pairs, the same for the same seed."""
    rng = random.Random(seed)
    for _ in range(size):
        yield _sentence(rng)


def heldout_pairs(size: int, seed: int, exclude: set[str]) -> Iterator[tuple[str, str]]:
    """`size` pairs drawn as `generate_pairs` draws them, skipping any whose English is in `exclude`."""
    rng = random.Random(seed)
    produced = 0
    while produced < size:
        en, de = _sentence(rng)
        if en not in exclude:
            produced += 1
            yield en, de
