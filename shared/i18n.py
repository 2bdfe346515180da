"""Languages artisans read: gettext catalogues (``shared/locales/<lang>/LC_MESSAGES/messages.po``,
compiled to ``.mo`` by ``make install``) and CLDR formatting of amounts and dates, through Babel.

English is the source language: a message id *is* the English text, with ``{name}`` placeholders
(python-brace-format), so code reads naturally and an untranslated message still says something.
User-facing text is always one whole catalogued sentence with placeholders, never pieces glued
together: word order differs between French and Arabic.

- ``translate(language, msgid, **params)``: one catalogued message, rendered.
- ``Message(msgid, **params)``: the same, kept lazy until the language is known (an error raised
  before anyone knows who reads it); ``str()`` gives English.
- ``translate_text(language, english)``: an English text that was already rendered (a
  marshmallow message, an error detail): found as a catalogue entry, or matched against the
  catalogue's templates, else ``None``.
- ``format_money`` / ``format_datetime``: CLDR forms (``1 234,50 MAD`` in French, the Moroccan
  Arabic form in Arabic).
- ``negotiate(accept_language)``: the best of ``LANGUAGES`` for an ``Accept-Language`` header.
"""

from __future__ import annotations

import datetime as dt
import functools
import gettext
import io
import re
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_datetime as babel_format_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_currency
from babel.support import Translations

from shared.money import CURRENCIES

LANGUAGES = ("fr", "ar", "en")
DEFAULT_LANGUAGE = "en"
# The CLDR locale each language is formatted in: artisans are in Morocco.
CLDR_LOCALES: Mapping[str, str] = {"fr": "fr_MA", "ar": "ar_MA", "en": "en"}
# Local time for dates in messages.
LOCAL_TIMEZONE = ZoneInfo("Africa/Casablanca")

LOCALES_DIR = Path(__file__).parent / "locales"
DOMAIN = "messages"

_PLACEHOLDER = re.compile(r"\{([a-z_][a-z0-9_]*)\}")


def N_(msgid: str) -> str:  # noqa: N802 - gettext's conventional name for "mark for extraction"
    """Marks ``msgid`` for the catalogue without translating it (translated when rendered)."""
    return msgid


def normalize_language(value: str | None) -> str:
    """``value`` if it is one of ``LANGUAGES`` (``fr-MA`` counts as ``fr``), else the default."""
    primary = (value or "").strip().replace("_", "-").split("-")[0].lower()
    return primary if primary in LANGUAGES else DEFAULT_LANGUAGE


def negotiate(accept_language: str | None) -> str | None:
    """The best of ``LANGUAGES`` for an ``Accept-Language`` header, or ``None`` if it names none
    of them (``*`` included: the caller's own default applies then)."""
    if not accept_language:
        return None
    ranked: list[tuple[float, int, str]] = []
    for position, item in enumerate(accept_language.split(",")):
        tag, _, parameters = item.strip().partition(";")
        quality = 1.0
        for parameter in parameters.split(";"):
            name, _, value = parameter.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        primary = tag.strip().split("-")[0].lower()
        if primary in LANGUAGES and quality > 0:
            ranked.append((-quality, position, primary))
    return min(ranked)[2] if ranked else None


@functools.cache
def translations(language: str) -> gettext.NullTranslations:
    """The catalogue of ``language``: its compiled ``.mo``, or, when that is missing or older than
    the ``.po`` (a fresh edit), the ``.po`` compiled in memory. English is the message ids."""
    language = normalize_language(language)
    directory = LOCALES_DIR / language / "LC_MESSAGES"
    po_path, mo_path = directory / f"{DOMAIN}.po", directory / f"{DOMAIN}.mo"
    if not po_path.exists():
        return gettext.NullTranslations()
    if mo_path.exists() and mo_path.stat().st_mtime >= po_path.stat().st_mtime:
        with mo_path.open("rb") as handle:
            return Translations(handle, domain=DOMAIN)
    with po_path.open("rb") as handle:
        catalog = read_po(handle, locale=language)
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return Translations(buffer, domain=DOMAIN)


def translate(language: str | None, msgid: str, **params: Any) -> str:
    """``msgid`` in ``language``, its ``{name}`` placeholders filled from ``params``."""
    text = translations(normalize_language(language)).gettext(msgid)
    return text.format(**params) if params else text


class Message:
    """A catalogued message not rendered yet: ``str()`` is English, ``localized(lang)`` any language."""

    __slots__ = ("msgid", "params")

    def __init__(self, msgid: str, **params: Any) -> None:
        self.msgid = msgid
        self.params = params

    def localized(self, language: str | None) -> str:
        return translate(language, self.msgid, **self.params)

    def __str__(self) -> str:
        return self.msgid.format(**self.params) if self.params else self.msgid

    def __repr__(self) -> str:
        return f"Message({self.msgid!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Message):
            return (self.msgid, self.params) == (other.msgid, other.params)
        return str(self) == other

    def __hash__(self) -> int:
        return hash(str(self))


@functools.cache
def _templates(language: str) -> tuple[tuple[re.Pattern[str], str], ...]:
    """The catalogue's message ids that have placeholders, as patterns matching their English
    rendering (longest first: the most specific wins)."""
    catalog: dict[Any, Any] = getattr(translations(language), "_catalog", {})
    found = []
    for msgid in catalog:
        if not isinstance(msgid, str) or not msgid or not _PLACEHOLDER.search(msgid):
            continue
        pattern, position, seen = "", 0, set()
        for match in _PLACEHOLDER.finditer(msgid):
            pattern += re.escape(msgid[position : match.start()])
            name = match.group(1)
            pattern += f"(?P={name})" if name in seen else f"(?P<{name}>.+?)"
            seen.add(name)
            position = match.end()
        pattern += re.escape(msgid[position:])
        found.append((re.compile(f"^{pattern}$", re.DOTALL), msgid))
    found.sort(key=lambda item: -len(item[1]))
    return tuple(found)


def translate_text(language: str | None, english: str) -> str | None:
    """An already-rendered English text in ``language``: a catalogue entry as it is, or one of the
    catalogue's templates with the values it was rendered with; ``None`` when the catalogue does
    not know it. English gives the text back unchanged."""
    language = normalize_language(language)
    if language == "en":
        return english
    catalogue = translations(language)
    direct = catalogue.gettext(english)
    if direct != english or english in getattr(catalogue, "_catalog", {}):
        return direct
    for pattern, msgid in _templates(language):
        match = pattern.match(english)
        if match:
            return catalogue.gettext(msgid).format(**match.groupdict())
    return None


def format_money(amount_minor: int, currency: str, language: str | None) -> str:
    """An amount in minor units, as CLDR writes it in ``language`` (``1 234,50 MAD`` in French)."""
    exponent = CURRENCIES[currency][1] if currency in CURRENCIES else 2
    value = Decimal(amount_minor).scaleb(-exponent)
    return format_currency(value, currency, locale=CLDR_LOCALES[normalize_language(language)])


def format_datetime(value: dt.datetime, language: str | None) -> str:
    """A moment in Moroccan local time, CLDR's short form in ``language``."""
    return babel_format_datetime(
        value, format="short", tzinfo=LOCAL_TIMEZONE, locale=CLDR_LOCALES[normalize_language(language)]
    )
