"""Problems in the reader's language: ``title`` and ``detail`` follow the language asked for; the
``code`` (the contract) never changes.

A title is found in the catalogue as it is. A detail is a ``shared.i18n.Message`` (rendered in the
language), or an English text the catalogue knows (as it is, or as one of its templates with the
values it was rendered with). A validation problem's per-field messages are translated the same
way and its detail rebuilt from them. A detail the catalogue does not know yet gives way to the
translated title, so a reader never gets a sentence in a language they did not ask for.
"""

from __future__ import annotations

from typing import Any

from shared.errors import HirfaError
from shared.i18n import Message, normalize_language, translate_text

# How many field messages a validation problem's detail repeats (the rest are in ``errors``).
_DETAIL_FIELDS = 5


def localize_problem(error: HirfaError, body: dict[str, Any], language: str | None) -> dict[str, Any]:
    """``body`` (``error.to_problem()``) with its title, detail and field messages in ``language``."""
    language = normalize_language(language)
    if isinstance(error.detail, Message):
        body["detail"] = error.detail.localized(language)
    if language == "en":
        return body
    title = translate_text(language, str(body["title"])) or str(body["title"])
    errors = body.get("errors")
    if isinstance(errors, list):
        body["errors"] = [_localized_item(item, language) for item in errors]
    if not isinstance(error.detail, Message):
        detail = translate_text(language, str(body["detail"]))
        if detail is None and isinstance(errors, list) and errors:
            detail = "; ".join(
                f"{item.get('param', '')}: {item.get('message', '')}"
                for item in body["errors"][:_DETAIL_FIELDS]
            )
        body["detail"] = detail if detail is not None else title
    body["title"] = title
    return body


def _localized_item(item: Any, language: str) -> Any:
    if not isinstance(item, dict) or not isinstance(item.get("message"), str):
        return item
    return {**item, "message": translate_text(language, item["message"]) or item["message"]}
