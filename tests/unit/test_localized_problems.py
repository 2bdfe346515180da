"""Problems in the reader's language: titles, details (catalogued, templated or lazy ``Message``s)
and per-field messages translated; the code untouched; the artisan token's ``lang`` claim."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from shared.auth.keys import SigningKeyStore
from shared.auth.scopes import ROLE_SCOPES, Role
from shared.auth.tokens import TokenIssuer, TokenVerifier
from shared.errors import Conflict, HirfaError, NotFound, ValidationFailed
from shared.i18n import Message, translate_text
from shared.localized_errors import localize_problem

ISSUER = "https://auth.test"


def problem(error, language):
    return localize_problem(error, error.to_problem(request_id="req_1"), language)


def test_a_catalogued_detail_is_translated_and_the_code_kept():
    error = Conflict("No code is waiting: request one first.", code="no_pending_verification")

    arabic = problem(error, "ar")

    assert arabic["code"] == "no_pending_verification" and arabic["status"] == 409
    assert (arabic["title"], arabic["detail"]) == ("تعارض", "لا يوجد رمز في الانتظار: اطلب رمزا أولا.")
    assert problem(error, "en")["detail"] == "No code is waiting: request one first."


def test_a_message_detail_is_rendered_in_the_language_and_in_english_by_default():
    error = NotFound(Message("No notification {notification_id}.", notification_id="ntf_1"))

    assert str(error) == "No notification ntf_1."
    assert problem(error, "fr")["detail"] == "Aucune notification ntf_1."
    assert problem(error, None)["detail"] == "No notification ntf_1."


def test_a_detail_the_catalogue_does_not_know_gives_way_to_the_translated_title():
    error = Conflict("Some brand new explanation.", code="something_new")

    french = problem(error, "fr")

    assert (french["title"], french["detail"], french["code"]) == ("Conflit", "Conflit", "something_new")


def test_a_validation_problem_is_rebuilt_from_its_translated_field_messages():
    errors = [
        {"param": "phone", "message": "Missing data for required field.", "location": "json"},
        {"param": "full_name", "message": "Length must be between 2 and 200.", "location": "json"},
    ]
    error = ValidationFailed(
        "phone: Missing data for required field.; full_name: Length must be between 2 and 200.", errors=errors
    )

    french = problem(error, "fr")

    assert french["errors"][0] == {
        "param": "phone",
        "message": "Champ obligatoire manquant.",
        "location": "json",
    }
    assert french["detail"] == (
        "phone: Champ obligatoire manquant.; full_name: La longueur doit être comprise entre 2 et 200."
    )
    assert french["code"] == "validation_error"


def test_an_artisan_token_carries_the_language_as_its_lang_claim(tmp_path):
    keys = SigningKeyStore(tmp_path)
    keys.generate()
    issuer = TokenIssuer(keys, ISSUER)
    verifier = TokenVerifier(
        lambda kid: keys.public_keys().get(kid), issuer=ISSUER, audience="hirfa-accounts"
    )

    def principal(lang):
        token, _ = issuer.issue(
            client_id="art_1",
            role=Role.ARTISAN,
            scopes=ROLE_SCOPES[Role.ARTISAN],
            audiences=["hirfa-accounts"],
            lang=lang,
        )
        return verifier.verify(token)

    assert principal("ar").lang == "ar"
    assert principal(None).lang is None


# --- every detail a problem can carry is in the catalogue ------------------------------------------

ROOT = Path(__file__).resolve().parents[2]


def _error_classes() -> set[str]:
    """Every HirfaError subclass, by name: those imported, and those the code defines (to a fixpoint)."""
    names = {cls.__name__ for cls in _subclasses(HirfaError)} | {"HirfaError"}
    classes = [
        node
        for path in [*(ROOT / "shared").rglob("*.py"), *(ROOT / "services").rglob("*.py")]
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ClassDef)
    ]
    while True:
        more = {
            node.name
            for node in classes
            if any(getattr(base, "id", getattr(base, "attr", None)) in names for base in node.bases)
        }
        if more <= names:
            return names
        names |= more


def _subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def _placeholder(expression: ast.expr) -> str:
    return re.sub(r"[^a-z0-9_]+", "_", ast.unparse(expression).lower()).strip("_") or "value"


def raised_details() -> dict[str, str]:
    """Every detail written in the code as a literal or an f-string, as the English message id the
    catalogue holds (an f-string's values become ``{placeholders}``), with where it is."""
    errors = _error_classes()
    found: dict[str, str] = {}
    for path in [*(ROOT / "services").rglob("*.py"), *(ROOT / "shared").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            if getattr(node.func, "id", getattr(node.func, "attr", None)) not in errors:
                continue
            # A detail chosen by a condition (``"a" if … else "b"``) is each of its branches.
            pending = [node.args[0]]
            while pending:
                detail = pending.pop()
                where = f"{path.relative_to(ROOT)}:{node.lineno}"
                if isinstance(detail, ast.IfExp):
                    pending += [detail.body, detail.orelse]
                elif isinstance(detail, ast.Constant) and isinstance(detail.value, str):
                    found.setdefault(detail.value, where)
                elif isinstance(detail, ast.JoinedStr):
                    found.setdefault(_message_id(detail), where)
    return found


def _message_id(detail: ast.JoinedStr) -> str:
    """An f-string as the catalogue's message id: its values become ``{placeholders}``."""
    parts = []
    for value in detail.values:
        if isinstance(value, ast.Constant):
            parts.append(str(value.value))
        elif isinstance(value, ast.FormattedValue):
            name = _placeholder(value.value)
            parts.append(f"'{{{name}}}'" if value.conversion == ord("r") else f"{{{name}}}")
    return "".join(parts)


@pytest.mark.parametrize("language", ["fr", "ar"])
def test_details_the_catalogue_cannot_see_in_a_raise_are_translated_too(language):
    """Details chosen by a condition, and the income statement's period errors (raised as their
    own exception, then turned into a problem), read in the reader's language."""
    for detail in (
        "The payment is already fully refunded.",
        "The marketplace has no commission to pay out.",
        "A statement covers at most 36 months.",
        "from must not be in the future.",
        "to must be a month as YYYY-MM (e.g. 2026-01).",
    ):
        assert translate_text(language, detail) not in (None, detail), detail


@pytest.mark.parametrize("language", ["fr", "ar"])
def test_every_problem_detail_in_the_code_is_in_the_catalogue(language):
    """A new detail needs its translations in shared/locales/{fr,ar}/LC_MESSAGES/messages.po (until
    then the reader gets the translated title instead); this lists the missing ones as .po entries."""
    details = raised_details()
    assert len(details) > 50
    missing = {msgid: where for msgid, where in details.items() if translate_text(language, msgid) is None}
    entries = "\n".join(f'#: {where}\nmsgid "{msgid}"\nmsgstr ""\n' for msgid, where in missing.items())
    assert not missing, f"{len(missing)} detail(s) not in the {language} catalogue:\n{entries}"


def test_a_problem_of_ours_for_an_artisan_never_asks_the_services_record_for_the_language():
    """A 503 (the database unavailable) is answered in the token's language without the artisan
    language lookup, which would wait on the database; a 4xx still asks it."""
    from flask import Flask, g

    from shared.app import ARTISAN_LANGUAGE_EXTENSION, problem_response
    from shared.auth import Principal
    from shared.errors import DatabaseUnavailable

    asked = []

    def resolver(artisan_id):
        asked.append(artisan_id)
        return "fr"

    app = Flask("problems")
    app.extensions[ARTISAN_LANGUAGE_EXTENSION] = resolver
    artisan = Principal("art_1", Role.ARTISAN, ROLE_SCOPES[Role.ARTISAN], token_id="t", lang="ar")
    with app.test_request_context("/"):
        g.principal = artisan
        unavailable = problem_response(DatabaseUnavailable())
        assert (unavailable.status_code, unavailable.headers["Content-Language"]) == (503, "ar")
        assert asked == []
        missing = problem_response(NotFound("No artisan 'art_2'."))
        assert (missing.status_code, missing.headers["Content-Language"]) == (404, "fr")
        assert asked == ["art_1"]
    with app.test_request_context("/", headers={"Accept-Language": "en"}):
        g.principal = artisan
        assert problem_response(DatabaseUnavailable()).headers["Content-Language"] == "en"
