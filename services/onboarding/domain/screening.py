"""Sanctions/PEP screening: read the UN consolidated list and match artisan names against it.

Pure domain code, no database and no Flask. The service layer loads a list file, builds one
``ScreeningIndex`` per list version and asks it about each artisan.

Matching has to survive the two ways the same person's name differs between an artisan's
registration and a sanctions list:

* transliteration: an artisan may type "محمد" while the list says "MOHAMMED", or the list says
  "ABD AL-QADIR" (UN/English romanisation) while the CIN says "Abdelkader" (French/Maghrebi);
* order: Moroccan documents put the family name first or last, lists do either.

So every name is compared twice: as spelled (``normalise_latin``) and as a script-independent
consonant skeleton (``name_skeleton``), with token-sorted fuzzy ratios so order does not count.
Skeletons are deliberately coarse and collide more often (Ahmed/Hamid both give "hmd"). That is
acceptable here because a hit never rejects anyone: it only sends the case to a compliance
officer. A missed match is the costly error; a false hit costs a few minutes of review.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from xml.parsers import expat

from rapidfuzz import fuzz, process

# Scores are 0..100. 85 catches one- or two-letter spelling differences on typical two- or
# three-part names while keeping unrelated names (which share at most a token) below it.
DEFAULT_THRESHOLD = 85.0

# A Latin-vs-Latin skeleton score is discounted a little: two different Latin spellings that
# only agree once vowels are gone are weaker evidence than two spellings that agree as written.
_LATIN_SKELETON_WEIGHT = 0.95


class ScreeningListError(ValueError):
    """The list file cannot be trusted: unsafe, malformed, or not a UN consolidated list."""


@dataclass(frozen=True)
class ListEntry:
    """One listed individual or entity, with every name under which it could turn up."""

    reference: str  # UN REFERENCE_NUMBER, e.g. "QDi.001": what a compliance officer cites
    kind: str  # "individual" or "entity"
    primary_name: str
    names: tuple[str, ...]  # primary name, alias names, then NAME_ORIGINAL_SCRIPT if present
    list_type: str  # UN_LIST_TYPE, the sanctions regime
    listed_on: str | None


@dataclass(frozen=True)
class SanctionsList:
    """A parsed list. ``version`` tells which list a screening result was computed against."""

    version: str
    entries: tuple[ListEntry, ...]


@dataclass(frozen=True)
class ScreeningMatch:
    """An entry whose best-scoring name reached the threshold."""

    entry: ListEntry
    matched_name: str
    score: float  # 0..100, rounded to one decimal


# --------------------------------------------------------------------------------------------
# Parsing the UN Security Council consolidated list
# --------------------------------------------------------------------------------------------

_ROOT_TAG = "CONSOLIDATED_LIST"
_INDIVIDUAL_NAME_PARTS = ("FIRST_NAME", "SECOND_NAME", "THIRD_NAME", "FOURTH_NAME")


def parse_un_consolidated_list(data: bytes) -> SanctionsList:
    """Parse the UN consolidated list XML (https://scsanctions.un.org/resources/xml/en/consolidated.xml).

    Raises ``ScreeningListError`` for a document with a DTD, malformed XML, a root other than
    ``CONSOLIDATED_LIST``, or an entry without a reference number or a name: a list with silent
    gaps is worse than a refresh that fails loudly and keeps the previous list in use.
    """
    _refuse_document_type_declarations(data)
    try:
        root = ET.fromstring(data)
    except ET.ParseError as error:
        raise ScreeningListError(f"The sanctions list is not well-formed XML: {error}") from None
    if _local_name(root.tag) != _ROOT_TAG:
        raise ScreeningListError(
            f"Expected a UN consolidated list (root element {_ROOT_TAG}), got {_local_name(root.tag)}."
        )

    version = root.get("dateGenerated") or "sha256:" + hashlib.sha256(data).hexdigest()[:16]
    entries: list[ListEntry] = []
    for section, tag, kind, name_parts, alias_tag in (
        ("INDIVIDUALS", "INDIVIDUAL", "individual", _INDIVIDUAL_NAME_PARTS, "INDIVIDUAL_ALIAS"),
        ("ENTITIES", "ENTITY", "entity", ("FIRST_NAME",), "ENTITY_ALIAS"),
    ):
        for element in root.findall(f"{section}/{tag}"):
            entries.append(_parse_entry(element, kind, name_parts, alias_tag))
    return SanctionsList(version=version, entries=tuple(entries))


def _refuse_document_type_declarations(data: bytes) -> None:
    """Refuse any DOCTYPE/ENTITY declaration before ElementTree sees the document.

    The UN list never has a DTD, so one can only be an attempt at entity expansion ("billion
    laughs") or external entities. A plain byte search would miss a UTF-16 document, so the check
    runs as an expat pass, which decodes the declared encoding and stops at the declaration
    itself, before any entity is defined or expanded.
    """

    def refuse(*_args: object) -> None:
        raise ScreeningListError(
            "Refusing a sanctions list with a DOCTYPE or ENTITY declaration (entity-expansion risk)."
        )

    checker = expat.ParserCreate()
    checker.StartDoctypeDeclHandler = refuse
    checker.EntityDeclHandler = refuse
    try:
        checker.Parse(data, True)
    except expat.ExpatError as error:
        raise ScreeningListError(f"The sanctions list is not well-formed XML: {error}") from None


def _parse_entry(element: ET.Element, kind: str, name_parts: tuple[str, ...], alias_tag: str) -> ListEntry:
    data_id = _text(element, "DATAID") or "?"
    reference = _text(element, "REFERENCE_NUMBER")
    if not reference:
        raise ScreeningListError(f"List entry DATAID {data_id} has no REFERENCE_NUMBER.")
    primary_name = " ".join(part for part in (_text(element, tag) for tag in name_parts) if part)
    if not primary_name:
        raise ScreeningListError(f"List entry {reference} has no name.")

    names = [primary_name]
    for alias in element.findall(alias_tag):
        names.append(_text(alias, "ALIAS_NAME"))
    names.append(_text(element, "NAME_ORIGINAL_SCRIPT"))

    return ListEntry(
        reference=reference,
        kind=kind,
        primary_name=primary_name,
        names=_unique_non_empty(names),
        list_type=_text(element, "UN_LIST_TYPE"),
        listed_on=_text(element, "LISTED_ON") or None,
    )


def _text(element: ET.Element, tag: str) -> str:
    """The child's text with whitespace collapsed; "" when the child is missing or empty."""
    child = element.find(tag)
    if child is None or child.text is None:
        return ""
    return " ".join(child.text.split())


def _unique_non_empty(names: list[str]) -> tuple[str, ...]:
    # Aliases often repeat the primary name in another case; screening it twice adds nothing.
    seen: set[str] = set()
    unique: list[str] = []
    for name in names:
        key = name.casefold()
        if name and key not in seen:
            seen.add(key)
            unique.append(name)
    return tuple(unique)


def _local_name(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


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
    if _contains_arabic(token):
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


def _contains_arabic(text: str) -> bool:
    return _ARABIC_CHAR.search(text) is not None


# --------------------------------------------------------------------------------------------
# Similarity and the index
# --------------------------------------------------------------------------------------------


def name_similarity(a: str, b: str) -> float:
    """How alike two names are, 0..100, ignoring the order of name parts.

    Two Latin names: the better of their spelled forms and (slightly discounted) skeletons, so
    "Mohamed"/"Mohammed" scores on spelling and "Abdelkader"/"Abd al-Qadir" on skeleton. If
    either name is in Arabic script only the skeletons can be compared.
    """
    if _contains_arabic(a) or _contains_arabic(b):
        return _ratio(name_skeleton(a), name_skeleton(b))
    spelled = _ratio(normalise_latin(a), normalise_latin(b))
    return max(spelled, _LATIN_SKELETON_WEIGHT * _ratio(name_skeleton(a), name_skeleton(b)))


def _ratio(a: str, b: str) -> float:
    # rapidfuzz scores two empty strings as identical; two names with nothing left are not.
    if not a or not b:
        return 0.0
    return fuzz.token_sort_ratio(a, b)


class ScreeningIndex:
    """A list prepared for screening: every name's spelled form and skeleton computed once.

    The real UN list has about a thousand individuals with several aliases each; screening an
    artisan is then one C-level pass of rapidfuzz over a few thousand precomputed strings per
    comparison kind, with a score cutoff so most candidates are rejected early.
    """

    def __init__(self, sanctions_list: SanctionsList) -> None:
        self._version = sanctions_list.version
        self._entries = sanctions_list.entries
        # One row per (entry, name); rows keep the entry's name order, so ties go to the primary name.
        self._row_entry: list[int] = []
        self._row_name: list[str] = []
        self._row_is_latin: list[bool] = []
        self._row_skeleton: list[str] = []
        # The spelled forms exist only for Latin names; _latin_rows maps their position back to a row.
        self._latin_rows: list[int] = []
        self._latin_spelled: list[str] = []
        for entry_number, entry in enumerate(self._entries):
            for name in entry.names:
                row = len(self._row_name)
                is_latin = not _contains_arabic(name)
                self._row_entry.append(entry_number)
                self._row_name.append(name)
                self._row_is_latin.append(is_latin)
                self._row_skeleton.append(name_skeleton(name))
                if is_latin:
                    self._latin_rows.append(row)
                    self._latin_spelled.append(normalise_latin(name))

    @property
    def version(self) -> str:
        return self._version

    def screen(self, name: str, threshold: float = DEFAULT_THRESHOLD) -> list[ScreeningMatch]:
        """Entries with a name scoring at least ``threshold``: one per entry, best score first.

        Each row's score is exactly ``name_similarity(name, row_name)``; the cutoffs only skip
        rows that could not reach the threshold anyway.
        """
        if not 0.0 <= threshold <= 100.0:
            raise ValueError("threshold must be between 0 and 100")
        query_skeleton = name_skeleton(name)
        if not query_skeleton:
            return []

        row_scores: dict[int, float] = {}
        query_is_latin = not _contains_arabic(name)
        # The skeleton weight is at most 1, so a row below the threshold on raw skeleton score
        # stays below it after weighting: the threshold is a safe cutoff for this pass.
        for _, score, row in process.extract(
            query_skeleton,
            self._row_skeleton,
            scorer=fuzz.token_sort_ratio,
            limit=None,
            score_cutoff=threshold,
        ):
            both_latin = query_is_latin and self._row_is_latin[row]
            row_scores[row] = _LATIN_SKELETON_WEIGHT * score if both_latin else score
        if query_is_latin:
            for _, score, position in process.extract(
                normalise_latin(name),
                self._latin_spelled,
                scorer=fuzz.token_sort_ratio,
                limit=None,
                score_cutoff=threshold,
            ):
                row = self._latin_rows[position]
                row_scores[row] = max(score, row_scores.get(row, 0.0))

        best_row_per_entry: dict[int, int] = {}
        for row in sorted(row_scores):
            if row_scores[row] < threshold:
                continue
            entry_number = self._row_entry[row]
            best = best_row_per_entry.get(entry_number)
            if best is None or row_scores[row] > row_scores[best]:
                best_row_per_entry[entry_number] = row

        matches = [
            ScreeningMatch(
                entry=self._entries[entry_number],
                matched_name=self._row_name[row],
                score=round(row_scores[row], 1),
            )
            for entry_number, row in best_row_per_entry.items()
        ]
        matches.sort(key=lambda match: (-match.score, match.entry.reference))
        return matches
