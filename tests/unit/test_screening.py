"""Sanctions screening: parsing the UN list format safely, and matching names across scripts."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from services.onboarding.adapters.screening_lists import ScreeningListError, parse_un_consolidated_list
from services.onboarding.domain.names import name_similarity, name_skeleton, normalise_latin
from services.onboarding.domain.screening import DEFAULT_THRESHOLD, ListEntry, SanctionsList, ScreeningIndex
from shared.config import PROJECT_ROOT

SAMPLE_LIST = PROJECT_ROOT / "services" / "onboarding" / "screening_lists" / "un_consolidated_sample.xml"


@pytest.fixture(scope="module")
def sample() -> SanctionsList:
    return parse_un_consolidated_list(Path(SAMPLE_LIST).read_bytes())


@pytest.fixture(scope="module")
def index(sample) -> ScreeningIndex:
    return ScreeningIndex(sample)


def by_reference(sanctions_list: SanctionsList) -> dict[str, ListEntry]:
    return {entry.reference: entry for entry in sanctions_list.entries}


def references(matches) -> list[str]:
    return [match.entry.reference for match in matches]


# --- parsing ---------------------------------------------------------------------------------


def test_sample_list_version_and_counts(sample):
    assert sample.version == "2026-11-01T00:00:00.000Z"
    kinds = [entry.kind for entry in sample.entries]
    assert kinds.count("individual") == 6
    assert kinds.count("entity") == 2


def test_individual_names_include_aliases_and_original_script(sample):
    entry = by_reference(sample)["ZZi.001"]
    assert entry.primary_name == "MOHAMMED YOUSSEF TAFRAOUTI"
    assert entry.names == (
        "MOHAMMED YOUSSEF TAFRAOUTI",
        "Mohamed Youssef Tafraouti",
        "Abou Youssef",
        "محمد يوسف التافراوتي",
    )
    assert entry.list_type == "FICTIONAL-TEST"
    assert entry.listed_on == "2026-03-12"


def test_name_parts_are_joined_and_empty_aliases_skipped(sample):
    entries = by_reference(sample)
    assert entries["ZZi.002"].primary_name == "FATIMA ZAHRA MERZOUKI"  # empty THIRD_NAME ignored
    assert entries["ZZi.005"].names == ("HASSAN IDRISSI OUBELLA", "Hassane Oubella")  # empty alias skipped
    assert not any("\u0600" <= char <= "\u06ff" for name in entries["ZZi.004"].names for char in name)


def test_entities_are_parsed_with_their_aliases(sample):
    entry = by_reference(sample)["ZZe.001"]
    assert entry.kind == "entity"
    assert entry.names == ("NORTHWIND ARGAN EXPORT COMPANY", "Northwind Argan Co.", "Northwind Argan SARL")


def minimal_list(body: str = "", root_attributes: str = "") -> bytes:
    sections = f"<INDIVIDUALS>{body}</INDIVIDUALS><ENTITIES/>"
    return f"<CONSOLIDATED_LIST {root_attributes}>{sections}</CONSOLIDATED_LIST>".encode()


def test_version_falls_back_to_a_content_hash():
    first = parse_un_consolidated_list(minimal_list())
    second = parse_un_consolidated_list(minimal_list(root_attributes='x="1"'))
    assert first.version.startswith("sha256:")
    assert first.version != second.version
    assert first.entries == ()


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE CONSOLIDATED_LIST [
  <!ENTITY lol "lol">
  <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
]>
<CONSOLIDATED_LIST><INDIVIDUALS><INDIVIDUAL><FIRST_NAME>&lol2;</FIRST_NAME></INDIVIDUAL></INDIVIDUALS>
</CONSOLIDATED_LIST>"""


@pytest.mark.parametrize(
    "document",
    [
        BILLION_LAUGHS,
        b'<!DOCTYPE CONSOLIDATED_LIST SYSTEM "file:///etc/passwd"><CONSOLIDATED_LIST/>',
        # A byte search for "<!DOCTYPE" would miss this one; the declaration is still refused.
        '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE x [<!ENTITY a "b">]><CONSOLIDATED_LIST/>'.encode(
            "utf-16"
        ),
    ],
    ids=["entity-expansion", "external-dtd", "utf-16-doctype"],
)
def test_document_type_declarations_are_refused(document):
    with pytest.raises(ScreeningListError, match="DOCTYPE or ENTITY"):
        parse_un_consolidated_list(document)


def test_malformed_xml_is_refused():
    with pytest.raises(ScreeningListError, match="not well-formed"):
        parse_un_consolidated_list(b"<CONSOLIDATED_LIST><INDIVIDUALS></CONSOLIDATED_LIST>")


def test_wrong_root_element_is_refused():
    with pytest.raises(ScreeningListError, match="CONSOLIDATED_LIST"):
        parse_un_consolidated_list(b"<sdnList><sdnEntry/></sdnList>")


def test_entry_without_reference_number_is_refused():
    with pytest.raises(ScreeningListError, match="REFERENCE_NUMBER"):
        parse_un_consolidated_list(
            minimal_list("<INDIVIDUAL><DATAID>7</DATAID><FIRST_NAME>X</FIRST_NAME></INDIVIDUAL>")
        )


def test_screening_list_error_is_a_value_error():
    assert issubclass(ScreeningListError, ValueError)


# --- normalisation and skeletons -------------------------------------------------------------


def test_normalise_latin_folds_case_accents_and_punctuation():
    assert normalise_latin("  Aït-Ben  HADDOU ") == "ait ben haddou"
    assert normalise_latin("Chaïmaé O'Brien") == "chaimae o brien"
    assert normalise_latin("El-Ouazzani") == "el ouazzani"  # particles are kept in the spelled form


@pytest.mark.parametrize(
    "spellings",
    [
        ("Mohamed", "Mohammed", "Muhammad", "Mhammed", "محمد", "مُحَمَّد", "ﻣﺤﻤﺪ"),
        ("Youssef", "Yousef", "Yusuf", "يوسف"),
        ("Fatima Zahra", "Fatima-Zahra", "Fatima Ezzahra", "Fatima Ez-Zahra", "فاطمة الزهراء"),
        ("Abdelkader", "Abdel Kader", "Abd al-Qadir", "Abd el Kader", "عبد القادر", "عبدالقادر"),
        ("Abderrahim", "Abd ar-Rahim", "عبد الرحيم"),
        ("Abdellah", "Abdallah", "عبد الله"),
        ("Khadija", "Khadidja", "خديجة"),
        ("Hassan", "Hassane", "حسن"),
        ("Chaimae", "Shaimaa", "شيماء"),
        ("Hicham", "Hisham", "هشام"),
        ("Ghita", "غيثة"),
        ("Tafraouti", "التافراوتي"),
    ],
    ids=lambda spellings: spellings[0],
)
def test_transliterations_share_one_skeleton(spellings):
    skeletons = {spelling: name_skeleton(spelling) for spelling in spellings}
    assert len(set(skeletons.values())) == 1, skeletons


def test_skeleton_keeps_one_token_per_name_part():
    assert name_skeleton("Fatima-Zahra El Merzouki") == "ftm zhr mrzk"
    assert name_skeleton("عبد القادر مصطفى الزياني") == "bd kdr mstf zn"
    assert name_skeleton("Aya Bennani") == "a bn"  # a vowel-only part does not vanish
    assert name_skeleton("") == ""


def test_different_names_have_different_skeletons():
    assert name_skeleton("Amina Tazi") != name_skeleton("Khadija Amraoui")
    assert name_skeleton("Hassan") != name_skeleton("Hussein Ali")


# --- similarity ------------------------------------------------------------------------------


def test_similarity_is_order_insensitive():
    assert name_similarity("Tafraouti Mohammed Youssef", "Mohammed Youssef Tafraouti") == 100.0


def test_spelled_agreement_beats_skeleton_agreement_for_latin_pairs():
    # Identical spellings score 100; spellings equal only as skeletons get the 0.95 discount.
    assert name_similarity("Mohamed Tazi", "MOHAMED TAZI") == 100.0
    assert name_similarity("Abdelkader", "Abd al-Qadir") == pytest.approx(95.0)


def test_arabic_and_latin_compare_by_skeleton_both_ways():
    assert name_similarity("خديجة العمراوي", "Khadija Amraoui") == 100.0
    assert name_similarity("Abdelkader Moustafa Zayani", "عبد القادر مصطفى الزياني") == 100.0


def test_unrelated_names_score_low():
    assert name_similarity("Amina Tazi", "Khadija Amraoui") < 60
    assert name_similarity("أمينة التازي", "KHADIJA AMRAOUI") < 60


# --- the index -------------------------------------------------------------------------------


def test_index_reports_the_list_version(index, sample):
    assert index.version == sample.version


def test_exact_name_is_a_hit(index):
    matches = index.screen("Mohammed Youssef Tafraouti", DEFAULT_THRESHOLD)
    assert references(matches) == ["ZZi.001"]
    assert matches[0].score == 100.0
    assert matches[0].matched_name == "MOHAMMED YOUSSEF TAFRAOUTI"  # ties go to the primary name


def test_reordered_name_parts_are_a_hit(index):
    matches = index.screen("Tafraouti Mohammed Youssef", DEFAULT_THRESHOLD)
    assert references(matches) == ["ZZi.001"]
    assert matches[0].score == 100.0


def test_spelling_variants_are_a_hit(index):
    matches = index.screen("Muhammad Yusuf Tafraouti", DEFAULT_THRESHOLD)
    assert references(matches) == ["ZZi.001"]
    assert matches[0].score >= 95.0

    matches = index.screen("Hassan Oubela", DEFAULT_THRESHOLD)
    assert references(matches) == ["ZZi.005"]
    assert matches[0].matched_name == "Hassane Oubella"


def test_artisan_in_arabic_hits_an_entry_listed_only_in_latin(index):
    matches = index.screen("خديجة العمراوي", DEFAULT_THRESHOLD)
    assert references(matches) == ["ZZi.004"]
    assert matches[0].matched_name == "KHADIJA AMRAOUI"
    assert matches[0].score == 100.0


def test_artisan_in_latin_hits_the_entrys_original_arabic_script(index):
    # French romanisation against a UN/English one: the Arabic original is the closest name.
    matches = index.screen("Abdelkader Moustafa Zayani", DEFAULT_THRESHOLD)
    assert references(matches) == ["ZZi.003"]
    assert matches[0].matched_name == "عبد القادر مصطفى الزياني"
    assert matches[0].score == 100.0


def test_artisan_in_arabic_hits_the_same_entry_in_either_script(index):
    matches = index.screen("شيماء الحارثي", DEFAULT_THRESHOLD)
    assert references(matches) == ["ZZi.006"]
    assert name_similarity("شيماء الحارثي", "CHAIMAE EL HARTI") == 100.0


@pytest.mark.parametrize("name", ["Amina Tazi", "أمينة التازي", "Rachid Alaoui", "Youness Berrada"])
def test_clearly_different_names_are_not_hits(index, name):
    assert index.screen(name, DEFAULT_THRESHOLD) == []
    best = index.screen(name, 0.0)[0]
    assert best.score < DEFAULT_THRESHOLD


def test_one_match_per_entry_with_its_best_name(index):
    # Several names of ZZi.001 are close to this query; only the best one is reported.
    matches = index.screen("Mohamed Youssef Tafraouti", 50.0)
    assert references(matches).count("ZZi.001") == 1
    best = next(match for match in matches if match.entry.reference == "ZZi.001")
    assert best.matched_name == "Mohamed Youssef Tafraouti"
    assert best.score == 100.0


def test_results_are_sorted_by_score_and_respect_the_threshold(index):
    matches = index.screen("Fatima Zahra Tafraouti", 30.0)
    assert len(matches) >= 3
    scores = [match.score for match in matches]
    assert scores == sorted(scores, reverse=True)
    assert all(score >= 30.0 for score in scores)
    assert len(set(references(matches))) == len(matches)


@pytest.mark.parametrize(
    "query",
    ["Mohamed Yousef Tafraouti", "خديجة العمراوي", "Fatima Merzouki", "Northwind Argan", "Amina Tazi"],
)
def test_index_scores_equal_name_similarity(index, sample, query):
    """The cutoffs inside the index must not change any score: compare with the plain function."""
    expected = {
        entry.reference: round(max(name_similarity(query, name) for name in entry.names), 1)
        for entry in sample.entries
    }
    observed = {match.entry.reference: match.score for match in index.screen(query, 0.0)}
    assert observed == expected


def test_threshold_outside_0_to_100_is_refused(index):
    with pytest.raises(ValueError):
        index.screen("Amina Tazi", 101.0)


def test_name_without_letters_matches_nothing(index):
    assert index.screen(" - 123 ", DEFAULT_THRESHOLD) == []


# --- a list the size of the real one ---------------------------------------------------------

FIRST_NAMES = [
    ("Mohamed", "محمد"), ("Youssef", "يوسف"), ("Hassan", "حسن"), ("Khadija", "خديجة"),
    ("Fatima", "فاطمة"), ("Rachid", "رشيد"), ("Omar", "عمر"), ("Salma", "سلمى"),
    ("Karim", "كريم"), ("Nadia", "نادية"), ("Driss", "إدريس"), ("Samira", "سميرة"),
    ("Hamza", "حمزة"), ("Latifa", "لطيفة"), ("Mehdi", "مهدي"), ("Zineb", "زينب"),
]  # fmt: skip
FAMILY_NAMES = [
    ("Bennani", "بناني"), ("Alaoui", "العلوي"), ("Tazi", "التازي"), ("Berrada", "برادة"),
    ("Chraibi", "الشرايبي"), ("Idrissi", "الإدريسي"), ("Lahlou", "لحلو"), ("Sqalli", "السقلي"),
    ("Fassi", "الفاسي"), ("Kettani", "الكتاني"), ("Ouazzani", "الوزاني"), ("Benjelloun", "بنجلون"),
]  # fmt: skip
PLANTED = ListEntry(
    reference="ZZi.999",
    kind="individual",
    primary_name="ZAKARIA OUHADDOU BELKHAYAT",
    names=("ZAKARIA OUHADDOU BELKHAYAT", "Zakariya Ouhaddou", "زكرياء أوحدو بلخياط"),
    list_type="FICTIONAL-TEST",
    listed_on=None,
)


def synthetic_list(entry_count: int = 1000, names_per_entry: int = 5) -> SanctionsList:
    """1,000 entries × 5 names = 5,000 names, mixing Latin and Arabic like the real list."""
    combinations = itertools.product(FIRST_NAMES, FIRST_NAMES, FAMILY_NAMES, FAMILY_NAMES)
    entries = []
    for number in range(entry_count):
        names = []
        for _ in range(names_per_entry):
            first, middle, family, other = next(combinations)  # each a (Latin, Arabic) pair
            if len(names) % 2:
                names.append(f"{first[1]} {middle[1]} {family[1]} {other[1]}")
            else:
                names.append(f"{first[0]} {middle[0]} {family[0]}-{other[0]}".upper())
        entries.append(
            ListEntry(f"SYi.{number:04d}", "individual", names[0], tuple(names), "SYNTHETIC", None)
        )
    entries.insert(500, PLANTED)
    return SanctionsList(version="synthetic", entries=tuple(entries))


def test_index_screens_a_synthetic_list_of_5000_names():
    sanctions_list = synthetic_list()
    assert sum(len(entry.names) for entry in sanctions_list.entries) >= 5000
    index = ScreeningIndex(sanctions_list)

    for query in ["Belkhayat Zakaria Ouhaddou", "زكرياء بلخياط أوحدو"]:
        matches = index.screen(query, DEFAULT_THRESHOLD)
        assert matches[0].entry.reference == "ZZi.999"
        assert matches[0].score == 100.0

    broad = index.screen("Mohamed Youssef Bennani Alaoui", 70.0)
    assert broad, "a name built from the generator's own parts must hit something"
    assert [match.score for match in broad] == sorted((match.score for match in broad), reverse=True)
    assert len({match.entry.reference for match in broad}) == len(broad)
    assert all(match.score >= 70.0 for match in broad)
