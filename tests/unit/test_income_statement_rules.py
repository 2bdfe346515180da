"""The income statement's pure parts and its wiring: the monthly figures from journal lines, the
period and the verification code, the statement signer (checked with jwcrypto), the PDF renderer
read back with pypdf, the public limit, the ``lang`` claim, production's refusal without a
statement key, and the deployment of that key."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import json
import types

import pytest
import yaml
from jwcrypto import jwk, jws
from pypdf import PdfReader

from services.accounts.adapters.rate_limits import SlidingWindowLimiter
from services.accounts.adapters.statement_pdf import FpdfStatementRenderer, format_amount
from services.accounts.adapters.statement_signing import JwsStatementSigner
from services.accounts.bootstrap import make_statement_keys, require_statement_key
from services.accounts.config import AccountsConfig
from services.accounts.domain.income_statements import (
    MAX_MONTHS,
    Month,
    Movement,
    Period,
    PeriodError,
    add_up,
    artisan_balance,
    new_verification_code,
    normalize_code,
)
from shared.auth.keys import SigningKeyStore
from shared.auth.scopes import Role
from shared.auth.tokens import TokenVerifier
from shared.config import PROJECT_ROOT, ConfigError
from shared.errors import RateLimited
from tests.tokens_forge import claims, sign_eddsa

TODAY = dt.date(2026, 12, 6)
ART = "art_1"


def line(
    cause, owner_type, kind, amount, *, day=dt.datetime(2026, 10, 5, tzinfo=dt.UTC), cause_id="c1", owner="x"
):
    owner_id = ART if owner_type == "artisan" else owner
    return Movement("je", cause, cause_id, day, owner_type, owner_id, kind, amount)


OCT = dt.datetime(2026, 10, 5, tzinfo=dt.UTC)
NOV = dt.datetime(2026, 11, 30, 23, 59, tzinfo=dt.UTC)
PERIOD = Period(Month(2026, 10), Month(2026, 11))


def test_figures_are_added_up_per_month_from_the_lines_of_each_movement():
    movements = [
        # payment 1 000,00: the gateway owes the gross, the artisan gets 900,00, the marketplace 100,00
        line("payment", "platform", "gateway_receivable:m2t", 100_000, cause_id="pay_1"),
        line("payment", "artisan", "pending", -90_000, cause_id="pay_1"),
        line("payment", "marketplace", "commission", -10_000, cause_id="pay_1", owner="mkt_a"),
        # released: pending to available, no income
        line("release", "artisan", "pending", 90_000),
        line("release", "artisan", "available", -90_000),
        # refund of 200,00 in November, 20,00 of commission given back
        line("refund", "platform", "gateway_receivable:m2t", -20_000, day=NOV),
        line("refund", "marketplace", "commission", 2_000, day=NOV, owner="mkt_a"),
        line("refund", "artisan", "available", 18_000, day=NOV),
        # dispute of 50,00 opened, then won (back to the artisan)
        line("dispute", "artisan", "available", 5_000, day=NOV),
        line("dispute", "platform", "disputes_held", -5_000, day=NOV),
        line("dispute", "platform", "disputes_held", 5_000, day=NOV),
        line("dispute", "artisan", "available", -5_000, day=NOV),
        # a dispute of 30,00 lost: taken, never given back
        line("dispute", "artisan", "available", 3_000, day=NOV),
        line("dispute", "platform", "disputes_held", -3_000, day=NOV),
        # payout of 400,00 created, then one of 100,00 failed and returned
        line("payout", "artisan", "available", 40_000, day=NOV),
        line("payout", "platform", "payouts_in_transit", -40_000, day=NOV),
        line("payout", "artisan", "available", 10_000, day=NOV),
        line("payout", "artisan", "available", -10_000, day=NOV),
        # outside the period: ignored
        line("payment", "artisan", "pending", -1, day=dt.datetime(2026, 12, 1, tzinfo=dt.UTC)),
    ]
    figures = add_up(PERIOD, movements)
    october, november = figures.months
    assert (october.gross_sales, october.marketplace_fees, october.net_income) == (100_000, 10_000, 90_000)
    assert october.payments == {"pay_1"} and october.marketplaces == {"mkt_a"} and october.active
    assert (november.refunds, november.marketplace_fees, november.disputes) == (20_000, -2_000, 3_000)
    assert november.net_income == -18_000 - 3_000
    assert november.payouts == 40_000 and not november.active
    assert figures.total("net_income") == 69_000 and figures.months_active == 1
    assert figures.marketplaces == ["mkt_a"]
    # What the artisan holds: net income less payouts.
    inside = [m for m in movements if m.posted_at < dt.datetime(2026, 12, 1, tzinfo=dt.UTC)]
    assert artisan_balance(inside) == figures.total("net_income") - figures.total("payouts")


def test_a_period_has_every_month_even_empty_ones():
    figures = add_up(Period(Month(2025, 11), Month(2026, 2)), [])
    assert [str(month.month) for month in figures.months] == ["2025-11", "2025-12", "2026-01", "2026-02"]
    assert figures.total("gross_sales") == 0 and figures.months_active == 0


@pytest.mark.parametrize(
    ("first", "last", "param"),
    [
        ("2026-1", "2026-02", "from"),
        ("2026-00", "2026-02", "from"),
        ("2026-01", "2026-13", "to"),
        ("2026-05", "2026-04", "to"),
        ("2027-01", "2027-01", "from"),
        ("2020-01", "2026-01", "to"),
    ],
)
def test_a_bad_period_names_its_parameter(first, last, param):
    with pytest.raises(PeriodError) as refused:
        Period.parse(first, last, today=TODAY)
    assert refused.value.param == param


def test_a_period_of_the_longest_length_is_accepted():
    period = Period.parse("2024-01", "2026-12", today=TODAY)
    assert len(period.months()) == MAX_MONTHS
    assert (period.start, period.end) == (
        dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
        dt.datetime(2027, 1, 1, tzinfo=dt.UTC),
    )


def test_verification_codes_are_random_and_read_back_however_typed():
    code = new_verification_code()
    assert len(code) == 19 and code.count("-") == 3
    assert code != new_verification_code()
    assert normalize_code(code.lower().replace("-", " ")) == code
    assert normalize_code("7kq2m9xd3tra-e5wb") == "7KQ2-M9XD-3TRA-E5WB"
    assert normalize_code("OIL0-0000-0000-0000") == "0110-0000-0000-0000"
    assert normalize_code("7KQ2-M9XD-3TRA") is None and normalize_code("UUUU-UUUU-UUUU-UUUU") is None


# --- the signer ----------------------------------------------------------------------------------


@pytest.fixture
def keys(tmp_path) -> SigningKeyStore:
    store = SigningKeyStore(tmp_path / "statement-keys")
    store.generate()
    return store


STATEMENT = {"object": "income_statement", "artisan_id": ART, "note": "é ع"}


def test_a_signed_statement_verifies_with_jwcrypto_and_the_signer(keys):
    signer = JwsStatementSigner(keys)
    compact, kid = signer.sign(STATEMENT)
    key_set = jwk.JWKSet.from_json(json.dumps(signer.jwks()))
    token = jws.JWS()
    token.deserialize(compact)
    token.verify(key_set.get_key(kid), alg="EdDSA")
    assert json.loads(token.payload) == STATEMENT
    check = signer.verify(compact)
    assert (check.valid, check.reason, check.kid, check.statement) == (
        True,
        "signature_valid",
        kid,
        STATEMENT,
    )


def test_a_rotated_key_signs_and_the_old_one_still_verifies(keys):
    signer = JwsStatementSigner(keys)
    old, old_kid = signer.sign(STATEMENT)
    keys.generate()
    new, new_kid = signer.sign(STATEMENT)
    assert new_kid != old_kid and len(signer.jwks()["keys"]) == 2
    assert signer.verify(old).valid and signer.verify(new).valid


def test_what_our_key_signed_that_is_no_statement_is_not_valid(keys):
    kid, private_key = keys.active()
    compact = sign_eddsa(private_key, kid, {"object": "something_else"}, typ="hirfa-income-statement+jws")
    check = JwsStatementSigner(keys).verify(compact)
    assert (check.valid, check.reason) == (False, "not_a_statement")


def test_an_unknown_kid_is_named(keys):
    compact = sign_eddsa(keys.active()[1], "k_unknown", STATEMENT)
    assert JwsStatementSigner(keys).verify(compact).reason == "unknown_key"


# --- the PDF -------------------------------------------------------------------------------------


def money(amount: int) -> dict:
    return {"amount": amount, "currency": "MAD"}


FIGURES = ("gross_sales", "refunds", "marketplace_fees", "disputes", "net_income", "payouts")


def sample_statement(months: int = 2) -> dict:
    month_list = [str(month) for month in Period(Month(2024, 1), Month(2026, 12)).months()[:months]]
    return {
        "artisan_id": ART,
        "issued_at": "2026-12-06T10:00:00+00:00",
        "period": {"from": month_list[0], "to": month_list[-1], "timezone": "UTC"},
        "kyc": {"tier": None, "status": None},
        "months_active": months,
        "payments_count": 7,
        "marketplaces": ["mkt_a"],
        "months": [{"month": m, **{f: money(123_450) for f in FIGURES}} for m in month_list],
        "totals": {f: money(123_450 * months) for f in FIGURES},
        "balance": {"opening": money(0), "closing": money(99)},
        "verification": {
            "code": "7KQ2-M9XD-3TRA-E5WB",
            "statement_url": "https://a/s",
            "verify_url": "https://a/v",
        },
    }


def render_text(statement: dict, language: str) -> tuple[str, int]:
    data = FpdfStatementRenderer().render(
        statement, language=language, verification_url="https://a/v", kid="k_1"
    )
    pages = PdfReader(io.BytesIO(data)).pages
    text = "\n".join(page.extract_text() for page in pages)
    return text.replace("\u202f", " ").replace("\xa0", " ").replace("\u200f", ""), len(pages)


def test_amounts_are_written_the_way_each_language_writes_them():
    assert format_amount(money(123_450), "fr").replace("\u202f", " ").replace("\xa0", " ") == "1 234,50 MAD"
    assert format_amount(money(123_450), "ar").replace("\u200f", "").replace("\xa0", " ") == "1.234,50 د.م."


@pytest.mark.parametrize(
    ("language", "words"), [("fr", "Relevé de revenus certifié"), ("ar", "كشف الدخل المصادق عليه")]
)
def test_the_pdf_carries_the_words_figures_and_code(language, words):
    text, pages = render_text(sample_statement(), language)
    assert pages == 1
    assert words in text
    assert ("1 234,50 MAD" if language == "fr" else "1.234,50") in text
    assert "7KQ2-M9XD-3TRA-E5WB" in text and ART in text
    assert ("inconnu" if language == "fr" else "غير معروف") in text  # the tier is not known yet


def test_a_long_statement_runs_onto_more_pages():
    text, pages = render_text(sample_statement(MAX_MONTHS), "ar")
    assert pages >= 2
    assert "7KQ2-M9XD-3TRA-E5WB" in text


def test_the_renderer_knows_only_french_and_arabic():
    with pytest.raises(ValueError):
        FpdfStatementRenderer().render(sample_statement(), language="de", verification_url="", kid="")


# --- the public limit, the lang claim -------------------------------------------------------------


def test_the_limiter_lets_a_caller_through_until_the_limit_then_after_the_window():
    now = [0.0]
    limiter = SlidingWindowLimiter(2, window_seconds=60, clock=lambda: now[0])
    limiter.hit("a")
    limiter.hit("a")
    limiter.hit("b")
    with pytest.raises(RateLimited) as refused:
        limiter.hit("a")
    assert refused.value.headers["Retry-After"] == "61"
    now[0] = 60.5
    limiter.hit("a")


@pytest.mark.parametrize(
    ("claimed", "seen"), [("ar", "ar"), ("fr-MA", "fr-MA"), ("<script>", None), (7, None)]
)
def test_the_tokens_lang_claim_reaches_the_principal_when_it_is_a_language_tag(keys, claimed, seen):
    kid, private_key = keys.active()
    verifier = TokenVerifier(lambda k: keys.public_keys().get(k), issuer="iss", audience="hirfa-accounts")
    token = sign_eddsa(private_key, kid, claims("iss", "hirfa-accounts", role=Role.ARTISAN, lang=claimed))
    assert verifier.verify(token).lang == seen


# --- production's statement key, and its deployment ---------------------------------------------


def test_development_makes_a_statement_key_and_production_does_not(tmp_path):
    development = AccountsConfig(service_name="accounts", database_url="sqlite://", var_dir=str(tmp_path))
    assert make_statement_keys(development).public_keys()
    production = dataclasses.replace(
        development, environment="production", statement_keys_dir=str(tmp_path / "mounted")
    )
    assert not make_statement_keys(production).public_keys()


def test_the_api_refuses_to_start_without_a_statement_key(tmp_path):
    config = AccountsConfig(
        service_name="accounts", database_url="sqlite://", statement_keys_dir=str(tmp_path / "empty")
    )
    store = SigningKeyStore(config.statement_keys_directory)
    context = types.SimpleNamespace(
        config=config, income_statements=types.SimpleNamespace(signer=JwsStatementSigner(store))
    )
    with pytest.raises(ConfigError, match="ACCOUNTS_STATEMENT_KEYS_DIR"):
        require_statement_key(context)
    store.generate()
    require_statement_key(context)


def k8s(name: str) -> list[dict]:
    return list(yaml.safe_load_all((PROJECT_ROOT / "deploy" / "k8s" / name).read_text()))


def test_only_the_accounts_api_mounts_the_statement_keys_where_the_config_map_says():
    directory = k8s("configmap.yaml")[0]["data"]["ACCOUNTS_STATEMENT_KEYS_DIR"]
    [api] = [doc for doc in k8s("accounts.yaml") if doc["kind"] == "Deployment"]
    spec = api["spec"]["template"]["spec"]
    [volume] = [
        v for v in spec["volumes"] if v.get("secret", {}).get("secretName") == "hirfa-accounts-statement-keys"
    ]
    [mount] = [m for m in spec["containers"][0]["volumeMounts"] if m["name"] == volume["name"]]
    assert (mount["mountPath"], mount["readOnly"]) == (directory, True)
    for other in (
        "onboarding.yaml",
        "payments.yaml",
        "accounts-worker.yaml",
        "consumers.yaml",
        "relays.yaml",
    ):
        assert "statement-keys" not in (PROJECT_ROOT / "deploy" / "k8s" / other).read_text(), other


def test_the_ingress_publishes_accounts_jwks():
    [ingress] = k8s("ingress.yaml")
    [rule] = [r for r in ingress["spec"]["rules"] if r["host"].startswith("accounts.")]
    paths = {(p["path"], p["pathType"]) for p in rule["http"]["paths"]}
    assert ("/.well-known/jwks.json", "Exact") in paths
