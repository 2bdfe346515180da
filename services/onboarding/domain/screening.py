"""Sanctions/PEP screening: a list's entries, and matching an artisan's name against them.

Pure domain code, no database and no Flask. The service layer loads a list version (read from the
UN consolidated-list XML by ``adapters/screening_lists.py``), builds one ``ScreeningIndex`` per
version and asks it about each artisan. Names are compared as ``domain/names.py`` says: as spelled
and as consonant skeletons, whatever the script and the order of name parts.
"""

from __future__ import annotations

from dataclasses import dataclass

from rapidfuzz import fuzz, process

from services.onboarding.domain.names import (
    LATIN_SKELETON_WEIGHT,
    contains_arabic,
    name_skeleton,
    normalise_latin,
)

# Scores are 0..100. 85 catches one- or two-letter spelling differences on typical two- or
# three-part names while keeping unrelated names (which share at most a token) below it.
DEFAULT_THRESHOLD = 85.0


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
                is_latin = not contains_arabic(name)
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
        query_is_latin = not contains_arabic(name)
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
            row_scores[row] = LATIN_SKELETON_WEIGHT * score if both_latin else score
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
