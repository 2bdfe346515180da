"""Reading the UN Security Council consolidated sanctions list (XML) into the domain's ``SanctionsList``.

The file comes from outside (https://scsanctions.un.org/resources/xml/en/consolidated.xml) and is
read defensively: a document type declaration is refused before parsing, and an entry without a
reference number or a name fails the whole file.
"""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET
from xml.parsers import expat

from services.onboarding.domain.screening import ListEntry, SanctionsList


class ScreeningListError(ValueError):
    """The list file cannot be trusted: unsafe, malformed, or not a UN consolidated list."""


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
