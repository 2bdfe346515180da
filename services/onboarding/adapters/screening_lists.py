"""Reading the UN Security Council consolidated sanctions list (XML) into the domain's ``SanctionsList``,
and fetching a list (sanctions or PEP, same XML layout) from its configured source: a path or an
http(s) URL.

The file comes from outside (https://scsanctions.un.org/resources/xml/en/consolidated.xml) and is
read defensively: a document type declaration is refused before parsing, and an entry without a
reference number or a name fails the whole file. A fetch has a timeout on every read, an overall
deadline and a size cap.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import email.utils
import hashlib
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit
from xml.parsers import expat

import requests

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


# The UN list is a few megabytes; anything far larger is not a list.
MAX_LIST_BYTES = 64 * 1024 * 1024


@dataclasses.dataclass(frozen=True)
class ListSource:
    """Where one list comes from, and how old it may be."""

    kind: str  # "sanctions" or "PEP": entries without a UN_LIST_TYPE are labelled with it
    location: str  # a path, or an http(s) URL
    max_age: dt.timedelta | None  # None: any age (development)
    setting: str  # the environment variable naming the source, for error messages
    max_age_setting: str = ""  # the one setting the max age


@dataclasses.dataclass(frozen=True)
class FetchedList:
    source: ListSource
    parsed: SanctionsList
    # How recent the list is: the later of its dateGenerated and the file's (or the response's)
    # modification time, so a list refreshed by a regular download counts as fresh even when the
    # publisher has not amended it for a while. None: neither is known.
    published_at: dt.datetime | None


def redacted(location: str) -> str:
    """A source as it may be shown and stored: no credentials, query or fragment in a URL."""
    parts = urlsplit(location)
    if parts.scheme not in {"http", "https"}:
        return location
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def fetch_list(
    source: ListSource, *, timeout_seconds: float, session: requests.Session | None = None
) -> FetchedList:
    """Read and parse the list at ``source``. Raises ``ScreeningListError`` (naming the setting,
    never a credential) when it cannot be read or parsed."""
    if urlsplit(source.location).scheme in {"http", "https"}:
        data, modified_at = _download(source, timeout_seconds, session or requests.Session())
    else:
        data, modified_at = _read_file(source)
    parsed = parse_un_consolidated_list(data)
    if source.kind != "sanctions":
        parsed = dataclasses.replace(
            parsed,
            entries=tuple(
                entry if entry.list_type else dataclasses.replace(entry, list_type=source.kind)
                for entry in parsed.entries
            ),
        )
    dates = [date for date in (_generated_at(parsed.version), modified_at) if date is not None]
    return FetchedList(source=source, parsed=parsed, published_at=max(dates, default=None))


def _read_file(source: ListSource) -> tuple[bytes, dt.datetime | None]:
    path = Path(source.location)
    try:
        data = path.read_bytes()
        modified_at = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC)
    except OSError as exc:
        raise ScreeningListError(f"{source.setting}: cannot read {path} ({exc.strerror})") from None
    return data, modified_at


def _download(
    source: ListSource, timeout_seconds: float, session: requests.Session
) -> tuple[bytes, dt.datetime | None]:
    shown = redacted(source.location)
    # The timeout bounds each read; the deadline bounds the whole download (a server that trickles).
    deadline = time.monotonic() + 4 * timeout_seconds
    try:
        with session.get(source.location, timeout=timeout_seconds, stream=True) as response:
            if response.status_code != 200:
                raise ScreeningListError(f"{source.setting}: {shown} answered {response.status_code}")
            chunks: list[bytes] = []
            size = 0
            for chunk in response.iter_content(64 * 1024):
                size += len(chunk)
                if size > MAX_LIST_BYTES:
                    raise ScreeningListError(
                        f"{source.setting}: {shown} is larger than {MAX_LIST_BYTES} bytes"
                    )
                if time.monotonic() > deadline:
                    raise ScreeningListError(f"{source.setting}: {shown} took too long to download")
                chunks.append(chunk)
            modified = response.headers.get("Last-Modified")
    except requests.RequestException as exc:
        raise ScreeningListError(f"{source.setting}: cannot fetch {shown} ({type(exc).__name__})") from None
    return b"".join(chunks), _http_date(modified)


def _http_date(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        return email.utils.parsedate_to_datetime(value).astimezone(dt.UTC)
    except (TypeError, ValueError):
        return None


def _generated_at(version: str) -> dt.datetime | None:
    """The list's dateGenerated as a time (its version is that attribute when the list has one)."""
    try:
        generated = dt.datetime.fromisoformat(version)
    except ValueError:
        return None
    return generated if generated.tzinfo else generated.replace(tzinfo=dt.UTC)
