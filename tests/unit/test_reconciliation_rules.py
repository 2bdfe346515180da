"""Reconciliation's pure rules: the acquirer's fee schedule, how a statement line is read, the
ledger lines of what a settlement or statement line proves, the case states, the configuration,
and the content-addressed file store."""

from __future__ import annotations

import io
import os
import stat

import pytest

from services.accounts.adapters.file_store import LocalFileStore
from services.accounts.config import AccountsConfig
from services.accounts.domain.ledger import Line, artisan, bank, check_balanced, normal_side, platform
from services.accounts.domain.reconciliation import (
    BREAK_STATES,
    CASE_KINDS,
    MATCH_RULES,
    CaseTransitionRefused,
    Fee,
    FeeSchedule,
    ItemKind,
    ItemState,
    bank_fee_lines,
    check_case_transition,
    fee_schedule,
    parse_fee_schedules,
    reserve_top_up_lines,
    returned_payout_lines,
    rule,
    settlement_lines,
    statement_line_kind,
)
from services.accounts.service_layer.recon_readers import sniff_statement_format
from shared.config import ConfigError


def test_fees_are_basis_points_rounded_half_up_plus_the_fixed_part():
    assert Fee(150, 150).of(10_000) == 300
    assert Fee(150, 150).of(10_033) == 150 + 150  # 150.495 → 150
    assert Fee(150, 150).of(10_034) == 151 + 150  # 150.51 → 151
    assert Fee(100, 0).of(-500) == 0


@pytest.mark.parametrize(
    "line_type, scheme, region, gross, expected",
    [
        ("capture", "cmi", "domestic", 10_000, 300),
        ("capture", "visa", "domestic", 10_000, 300),
        ("capture", "visa", "international", 10_000, 430),
        ("capture", "mastercard", "international", 10_000, 430),
        ("capture", "wallet", "domestic", 10_000, 100),
        ("refund", "cmi", "domestic", -10_000, 0),
        ("chargeback", "visa", "international", -10_000, 0),
    ],
)
def test_the_default_schedule_is_the_m2t_sandboxs(line_type, scheme, region, gross, expected):
    assert fee_schedule({}, "m2t").expected_fee(line_type, gross, scheme, region) == expected


def test_a_configured_schedule_overrides_per_family_or_scheme():
    schedules = parse_fee_schedules(
        '{"m2t": {"card:domestic": {"percent_bp": 120, "fixed": 100}, "visa:international": {"percent_bp": 300, "fixed": 0}}}'
    )
    schedule = fee_schedule(schedules, "m2t")
    assert schedule.expected_fee("capture", 10_000, "cmi", "domestic") == 220
    assert schedule.expected_fee("capture", 10_000, "visa", "international") == 300
    assert schedule.expected_fee("capture", 10_000, "mastercard", "international") == 430  # the default
    assert isinstance(fee_schedule(schedules, "other"), FeeSchedule)


@pytest.mark.parametrize(
    "raw",
    [
        "[]",
        '{"m2t": []}',
        '{"m2t": {"wallet": {"percent_bp": -1, "fixed": 0}}}',
        '{"m2t": {"wallet": {"bp": 1}}}',
        "{",
    ],
)
def test_a_malformed_fee_schedule_is_refused(raw):
    with pytest.raises(ValueError):
        parse_fee_schedules(raw)
    with pytest.raises(ConfigError):
        AccountsConfig(
            service_name="accounts", database_url="sqlite://", gateway_fee_schedules=raw
        ).validate()


def test_reconciliation_settings_are_checked():
    config = AccountsConfig(
        service_name="accounts",
        database_url="sqlite://",
        settlement_bank_codes="m2t:230",
        statement_bank_codes="145, 230",
    )
    config.validate()
    assert config.settlement_banks == {"m2t": "230"} and config.statement_banks == ("145", "230")
    assert AccountsConfig(service_name="accounts", database_url="sqlite://").statement_banks == ("145",)
    for bad in (
        {"settlement_bank_codes": "m2t"},
        {"statement_bank_codes": "14"},
        {"reconciliation_tolerance": -1},
        {"reconciliation_first_day": "yesterday"},
    ):
        with pytest.raises(ConfigError):
            AccountsConfig(service_name="accounts", database_url="sqlite://", **bad).validate()


@pytest.mark.parametrize(
    "amount, type_, reference, known_batch, kind",
    [
        (-5_000, "NTRF", "po_01JABC", False, ItemKind.PAYOUT),
        (-1_500, "NCHG", "NONREF", False, ItemKind.BANK_FEE),
        (-700, "NTRF", "SOMETHING", False, ItemKind.OTHER),
        (5_000, "NRTI", "po_01JABC", False, ItemKind.RETURNED_PAYOUT),
        (5_000, "NTRF", "RSV-mkt_1", False, ItemKind.RESERVE_TOP_UP),
        (5_000, "NTRF", "RSV-", False, ItemKind.OTHER),
        (5_000, "NTRF", "M2T-20261206-CARD", True, ItemKind.BATCH),
        (5_000, "NTRF", "M2T-20261206-CARD", False, ItemKind.OTHER),
    ],
)
def test_a_statement_line_is_read_from_its_sign_type_and_reference(
    amount, type_, reference, known_batch, kind
):
    assert statement_line_kind(amount, type_, reference, known_batch) == kind


def _balanced(lines):
    check_balanced([Line(str(ref), amount, "MAD") for ref, amount in lines if amount])


def test_what_reconciled_lines_post_balances():
    capture = settlement_lines(gateway="m2t", bank_code="145", gross=10_000, fee=300, net=9_700)
    assert dict(capture) == {
        bank("145"): 9_700,
        platform("gateway_fees"): 300,
        platform("gateway_receivable:m2t"): -10_000,
    }
    _balanced(capture)
    refund = settlement_lines(gateway="m2t", bank_code="145", gross=-4_000, fee=0, net=-4_000)
    assert dict(refund)[platform("gateway_receivable:m2t")] == 4_000
    _balanced(refund)
    _balanced(returned_payout_lines(bank_code="145", payee=artisan("art_1", "available"), amount=2_500))
    _balanced(reserve_top_up_lines(bank_code="145", marketplace_id="mkt_1", amount=50_000))
    fee = bank_fee_lines(bank_code="145", amount=1_500)
    assert dict(fee) == {platform("bank_fees"): 1_500, bank("145"): -1_500}
    assert normal_side("platform", "bank_fees") == "debit"


def test_case_states_move_forward_only():
    check_case_transition("open", "investigating")
    check_case_transition("investigating", "resolved")
    check_case_transition("open", "written_off")
    for current, target in (
        ("resolved", "written_off"),
        ("written_off", "resolved"),
        ("investigating", "open"),
    ):
        with pytest.raises(CaseTransitionRefused):
            check_case_transition(current, target)


def test_every_break_is_a_case_kind_and_the_rules_are_data():
    assert set(map(str, BREAK_STATES)) | {"balance_mismatch"} == set(CASE_KINDS)
    assert ItemState.MATCHED not in BREAK_STATES and len(BREAK_STATES) == 7
    assert {r.name for r in MATCH_RULES} >= {"settlement_by_reference", "batch_credit", "payout_debit"}
    assert rule("batch_credit", tolerance=5).tolerance == 5 and rule("batch_credit").tolerance == 0


def test_statement_formats_are_sniffed():
    assert sniff_statement_format(b'\xef\xbb\xbf<?xml version="1.0"?><Document/>') == "camt053"
    assert sniff_statement_format(b"{1:F01BANKMAMCAXXX}{4:\r\n:20:X") == "mt940"
    assert sniff_statement_format(b":20:STATEMENT\r\n:25:X") == "mt940"
    assert sniff_statement_format(b"date,amount\n") is None


def test_the_file_store_keeps_each_content_once_read_only_under_its_hash(tmp_path):
    store = LocalFileStore(tmp_path / "files")
    data = b"settlement_date,type\r\n" * 10_000  # over several read chunks
    stored = store.put(io.BytesIO(data))
    assert stored.size == len(data) and len(stored.sha256) == 64
    path = tmp_path / "files" / stored.sha256[:2] / stored.sha256
    assert not os.stat(path).st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    assert store.put(io.BytesIO(data)) == stored
    with store.open(stored.sha256) as kept:
        assert kept.read() == data
    assert [p.name for p in (tmp_path / "files").rglob("*") if p.is_file()] == [stored.sha256]
    with pytest.raises(ValueError):
        store.open("../../etc/passwd")
