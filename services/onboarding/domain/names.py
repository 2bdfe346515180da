"""Comparing people's names across Latin and Arabic script: the rule behind sanctions screening
and the bank-account holder check.

The same person's name differs in two ways between an artisan's registration, a bank's records
and a sanctions list:

* transliteration: an artisan may type "محمد" while the list says "MOHAMMED", or the list says
  "ABD AL-QADIR" (UN/English romanisation) while the CIN says "Abdelkader" (French/Maghrebi);
* order: Moroccan documents put the family name first or last, lists do either.

So every name is compared twice: as spelled (``normalise_latin``) and as a script-independent
consonant skeleton (``name_skeleton``), with token-sorted fuzzy ratios so order does not count.
Skeletons are deliberately coarse and collide more often (Ahmed/Hamid both give "hmd"). That is
acceptable for screening because a hit never rejects anyone: it only sends the case to a
compliance officer. A missed match is the costly error; a false hit costs a few minutes of review.
"""

from __future__ import annotations

import re
import unicodedata

from rapidfuzz import fuzz

# A Latin-vs-Latin skeleton score is discounted a little: two different Latin spellings that
# only agree once vowels are gone are weaker evidence than two spellings that agree as written.
LATIN_SKELETON_WEIGHT = 0.95


# --------------------------------------------------------------------------------------------
# Latin normalisation
# --------------------------------------------------------------------------------------------

# Letters NFKD does not decompose into a base letter plus accents.
_LATIN_EXTRA_FOLDS = str.maketrans({"ø": "o", "ł": "l", "đ": "d", "æ": "ae", "œ": "oe", "ı": "i", "ß": "ss"})
_NOT_A_LETTER_OR_DIGIT = re.compile(r"[\W_]+")


def normalise_latin(name: str) -> str:
    """Lower-case, accent-free, punctuation-free form of a name, e.g. "Aït-Ben Haddou" → "ait ben haddou".

    Particles ("el", "ben", "ait", "ould") are kept on purpose: this is the "as spelled" view,
    and dropping them here would make "Ben Ali" and "Ali" identical. The Arabic article is
    handled once, in ``name_skeleton``, where it is known to be an article.
    """
    decomposed = unicodedata.normalize("NFKD", name.casefold())
    without_accents = "".join(char for char in decomposed if not unicodedata.combining(char))
    folded = without_accents.translate(_LATIN_EXTRA_FOLDS)
    return " ".join(_NOT_A_LETTER_OR_DIGIT.sub(" ", folded).split())


# --------------------------------------------------------------------------------------------
# Consonant skeletons
# --------------------------------------------------------------------------------------------
#
# Both scripts are reduced to the same consonant classes (one lower-case letter each):
#
#   b t j h x(kh) d r z s c(sh/ch) f k(q/k) l m n g(gh/g)
#
# Vowels, the semivowels w/y (Arabic و/ي, French "ou"/"y"), alif, hamza and ʿayn are dropped:
# romanisations disagree on them more than on anything else (Mohamed/Muhammad, Youssef/Yusuf,
# Saad/Sa'd). Emphatic and plain consonants share a class because Latin spellings do not mark
# emphasis. Runs of the same class are collapsed after vowels are dropped, on both sides, so
# "Mohammed" and "محمد" (shadda is not written) agree.

_ARABIC_LETTER_CLASSES = {
    # alif, alif wasla, hamza and its carriers, alif maqsura: vowels or glottal stops
    "ا": "", "ٱ": "", "أ": "", "إ": "", "آ": "", "ء": "", "ؤ": "", "ئ": "", "ى": "",
    "ب": "b",
    "ت": "t",
    "ث": "t",  # th: "Othmane" / "Athmane"
    "ج": "j",
    "ح": "h",
    "خ": "x",
    "د": "d",
    "ذ": "d",  # dh: Maghrebi spellings write d ("Dahbi")
    "ر": "r",
    "ز": "z",
    "س": "s",
    "ش": "c",
    "ص": "s",
    "ض": "d",
    "ط": "t",
    "ظ": "d",  # Moroccan spellings write d ("Hafid"), not z
    "ع": "",  # ʿayn: usually unwritten in Latin ("Ali", "Saad")
    "غ": "g",
    "ف": "f",
    "ق": "k",  # "Kader" and "Qadir" are the same name
    "ك": "k",
    "ل": "l",
    "م": "m",
    "ن": "n",
    "ه": "h",
    "و": "",  # w / ou / u / o
    "ي": "",  # y / i / e
    "ة": "",  # ta marbuta: final -a/-e in Latin spellings ("Fatima", "Khadija")
    # letters used in Maghrebi and Persian-derived writing
    "ڭ": "g", "گ": "g", "ڨ": "g", "ک": "k", "ی": "", "پ": "b", "چ": "c", "ڤ": "f", "ڥ": "f",
}  # fmt: skip

# Harakat (short vowels, shadda, sukun, tanwin), superscript alif and tatweel: optional marks.
_ARABIC_MARKS = re.compile("[\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06ed\u0640]")
_ARABIC_RANGES = "\u0600-\u06ff\u0750-\u077f\u08a0-\u08ff\ufb50-\ufdff\ufe70-\ufeff"
# Letters only: Arabic punctuation (، ؛) and Arabic-Indic digits separate tokens like any other.
_ARABIC_LETTER_RANGES = "\u0621-\u063a\u0641-\u064a\u066e-\u06d3\u06d5\u0750-\u077f\u08a0-\u08c9"
_ARABIC_CHAR = re.compile(f"[{_ARABIC_RANGES}]")
# An Arabic word, or a run of other letters (digits and punctuation separate tokens).
_TOKEN = re.compile(f"[{_ARABIC_LETTER_RANGES}]+|[^\\W\\d_{_ARABIC_RANGES}]+")
# Apostrophes inside a Latin word mark ʿayn or hamza ("Ma'moun", "Sa'id"): delete, don't split.
_WORD_INTERNAL_MARKS = re.compile("['’‘`ʿʾʼ]")

_ARABIC_ARTICLES = ("ال", "ٱل")
_ARABIC_ABD_WITH_ARTICLE = ("عبدال", "عبدٱل")

_LATIN_DIGRAPHS = {
    "sch": "c",
    "ch": "c",  # French romanisation of ش ("Chaimae", "Hicham")
    "sh": "c",  # English romanisation of ش
    "kh": "x",
    "gh": "g",
    "dj": "j",  # French/Algerian romanisation of ج ("Khadidja", "Djamila")
    "dh": "d",
    "th": "t",
    "ph": "f",
    "ck": "k",
}
_LATIN_LETTER_CLASSES = {"p": "b", "v": "f", "q": "k", "x": "ks"}
_LATIN_VOWELS_AND_SEMIVOWELS = frozenset("aeiouyw")
_LATIN_ARTICLES = frozenset({"al", "el", "ul"})
# Sun-letter assimilation written as a separate token: "Ez-Zahra", "Es Saadi", "Ech Chaoui".
_LATIN_ASSIMILATED_ARTICLE = re.compile(r"[ae](ch|sh|[tdrzsn])")
# "Abdelkader", "Abdallah", "Abderrahim": ʿAbd + article + name, written as one Latin word.
_LATIN_ABD_WITH_ARTICLE = re.compile(r"abd(?:[aeiou]*l|[aeiou]+(?=ch|sh|([tdrzsn])\1))(?P<rest>\w*)")

# A token made only of vowels ("Aya", "آية") stays visible instead of vanishing.
_VOWEL_ONLY_TOKEN = "a"
_REPEATED_CLASS = re.compile(r"(.)\1+")


def name_skeleton(name: str) -> str:
    """Script-independent consonant skeleton, one space-separated token per name part.

    "Mohamed", "Muhammad" and "محمد" all give "mhmd"; "Fatima Ezzahra" and "فاطمة الزهراء" give
    "ftm zhr"; "Abdelkader", "Abd al-Qadir" and "عبد القادر" give "bd kdr". The Arabic article
    is dropped in both scripts: "ال" at the start of an Arabic word, and "al"/"el"/"ul" or an
    assimilated "ez"/"es"/"ech"… when written as a separate Latin word. An article glued to a
    Latin word ("Elamrani") is kept, because "Alami" (العلمي) shows a glued "al" is not always one.
    """
    tokens: list[tuple[str, bool]] = []
    for raw_token in _split_tokens(name):
        tokens.extend(_split_abd_with_article(raw_token))

    skeletons: list[str] = []
    for position, (token, is_arabic) in enumerate(tokens):
        if is_arabic:
            skeleton = _arabic_skeleton(token)
            if skeleton is None:
                continue
        else:
            following = tokens[position + 1] if position + 1 < len(tokens) else None
            if _is_separate_latin_article(token, following):
                continue
            skeleton = _latin_skeleton(token)
        skeletons.append(skeleton or _VOWEL_ONLY_TOKEN)
    return " ".join(skeletons)


def _split_tokens(name: str) -> list[str]:
    # NFKC turns Arabic presentation forms (ﻣﺤﻤﺪ) into ordinary letters before the marks go.
    text = _ARABIC_MARKS.sub("", unicodedata.normalize("NFKC", name))
    text = _WORD_INTERNAL_MARKS.sub("", text)
    return _TOKEN.findall(text)


def _split_abd_with_article(token: str) -> list[tuple[str, bool]]:
    """Split "عبدالقادر" and "Abdelkader" into ʿAbd + name, as "عبد القادر" / "Abd al-Qadir" are."""
    if contains_arabic(token):
        for prefix in _ARABIC_ABD_WITH_ARTICLE:
            if token.startswith(prefix) and len(token) > len(prefix):
                return [("عبد", True), (token[len("عبد") :], True)]
        return [(token, True)]

    folded = normalise_latin(token).replace(" ", "")
    match = _LATIN_ABD_WITH_ARTICLE.fullmatch(folded)
    if match is None:
        return [(folded, False)]
    rest = match.group("rest")
    return [("abd", False), (rest, False)] if rest else [("abd", False)]


def _arabic_skeleton(token: str) -> str | None:
    """Skeleton of one Arabic word; ``None`` for a lone article, which carries no name."""
    for article in _ARABIC_ARTICLES:
        if token == article:
            return None
        if token.startswith(article):
            token = token[len(article) :]
            break
    classes = "".join(_ARABIC_LETTER_CLASSES.get(letter, letter) for letter in token)
    return _REPEATED_CLASS.sub(r"\1", classes)


def _is_separate_latin_article(token: str, following: tuple[str, bool] | None) -> bool:
    if token in _LATIN_ARTICLES:
        return True
    assimilated = _LATIN_ASSIMILATED_ARTICLE.fullmatch(token)
    if assimilated is None or following is None or following[1]:
        return False
    # "ez zahra" is an article; "ed" before "Ahmed" or "an" before "Nour"… is only one when the
    # next word starts with the consonant it assimilated to.
    return following[0].startswith(assimilated.group(1))


def _latin_skeleton(token: str) -> str:
    classes: list[str] = []
    position = 0
    while position < len(token):
        for length in (3, 2):
            chunk = token[position : position + length]
            if len(chunk) == length and chunk in _LATIN_DIGRAPHS:
                classes.append(_LATIN_DIGRAPHS[chunk])
                position += length
                break
        else:
            letter = token[position]
            if letter == "c":
                # French: c before e/i/y is s ("Cherif" is caught above as ch), otherwise k.
                classes.append("s" if token[position + 1 : position + 2] in ("e", "i", "y") else "k")
            elif letter not in _LATIN_VOWELS_AND_SEMIVOWELS:
                classes.append(_LATIN_LETTER_CLASSES.get(letter, letter))
            position += 1
    return _REPEATED_CLASS.sub(r"\1", "".join(classes))


def contains_arabic(text: str) -> bool:
    return _ARABIC_CHAR.search(text) is not None


# --------------------------------------------------------------------------------------------
# Similarity
# --------------------------------------------------------------------------------------------


def name_similarity(a: str, b: str) -> float:
    """How alike two names are, 0..100, ignoring the order of name parts.

    Two Latin names: the better of their spelled forms and (slightly discounted) skeletons, so
    "Mohamed"/"Mohammed" scores on spelling and "Abdelkader"/"Abd al-Qadir" on skeleton. If
    either name is in Arabic script only the skeletons can be compared.
    """
    if contains_arabic(a) or contains_arabic(b):
        return _ratio(name_skeleton(a), name_skeleton(b))
    spelled = _ratio(normalise_latin(a), normalise_latin(b))
    return max(spelled, LATIN_SKELETON_WEIGHT * _ratio(name_skeleton(a), name_skeleton(b)))


def _ratio(a: str, b: str) -> float:
    # rapidfuzz scores two empty strings as identical; two names with nothing left are not.
    if not a or not b:
        return 0.0
    return fuzz.token_sort_ratio(a, b)
