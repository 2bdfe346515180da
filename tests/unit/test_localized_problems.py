"""Problems in the reader's language: titles, details (catalogued, templated or lazy ``Message``s)
and per-field messages translated; the code untouched; the artisan token's ``lang`` claim."""

from __future__ import annotations

from shared.auth.keys import SigningKeyStore
from shared.auth.scopes import ROLE_SCOPES, Role
from shared.auth.tokens import TokenIssuer, TokenVerifier
from shared.errors import Conflict, NotFound, ValidationFailed
from shared.i18n import Message
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

    def principal(language):
        token, _ = issuer.issue(
            client_id="art_1",
            role=Role.ARTISAN,
            scopes=ROLE_SCOPES[Role.ARTISAN],
            audiences=["hirfa-accounts"],
            language=language,
        )
        return verifier.verify(token)

    assert principal("ar").language == "ar"
    assert principal(None).language is None
    assert principal("tlh").language is None  # only the languages we speak
