"""Reconciliation runs against a real ledger: settlement files and bank statements matched in SQL,
what they post, each break as exactly one case, re-imports that change nothing, cases that heal,
malformed files that import nothing, and the balance rule after a statement.

The ledger is fed the way production feeds it (payments' events through the accounts consumer);
the files are ``SettlementLine``/``Statement`` records behind fake readers (the formats' own readers
have their own tests).
"""

from __future__ import annotations

import dataclasses
import io
import json

import pytest
import sqlalchemy as sa

from services.accounts.adapters.orm import (
    JournalEntry,
    JournalLine,
    LedgerAccount,
    LedgerCase,
    OutboxMessage,
    Payout,
)
from services.accounts.adapters.reconciliation_orm import ReconCaseEvent, ReconFile, ReconItem
from services.accounts.domain.reconciliation import settlement_posting_key
from services.accounts.service_layer import recon_cases, reconciliation
from services.accounts.service_layer.recon_readers import UnreadableFile
from services.accounts.service_layer.statements import check_integrity
from shared.bank_statements.model import MalformedFile
from shared.errors import ValidationFailed
from shared.events.schemas import validate_event
from tests.ledger_support import LedgerDriver, tier_changed
from tests.recon_support import (
    BANK,
    FakeReaders,
    capture,
    cases,
    domestic_fee,
    entry,
    items_of,
    paid_payments,
    paid_payout,
    refund_line,
    refunded,
    run_row,
    run_settlement,
    run_statement,
    settings_with,
    statement,
    states_of,
)

RECEIVABLE = ("platform", "platform", "gateway_receivable:m2t")
CLIENT_FUNDS = ("platform", "platform", f"bank:{BANK}")
FEES = ("platform", "platform", "gateway_fees")


@pytest.fixture
def context(accounts_app):
    return accounts_app.extensions["hirfa"]


@pytest.fixture
def ledger(accounts_app) -> LedgerDriver:
    return LedgerDriver(accounts_app)


@pytest.fixture
def readers(context) -> FakeReaders:
    readers = FakeReaders()
    settings_with(context, readers)
    return readers


@pytest.fixture
def artisan(ledger) -> str:
    return ledger.artisan_at_tier(3)


def outbox(context, prefix: str) -> list[dict]:
    with context.session_factory() as session:
        rows = session.scalars(sa.select(OutboxMessage).order_by(OutboxMessage.seq)).all()
    return [json.loads(row.payload) for row in rows if row.event_type.startswith(prefix)]


def count(context, model, *where) -> int:
    with context.session_factory() as session:
        return session.scalar(sa.select(sa.func.count()).select_from(model).where(*where))


# --- settlement files ----------------------------------------------------------------------------


def test_a_clean_settlement_file_matches_every_line_and_settles_the_receivable(
    context, ledger, readers, artisan
):
    first, second = paid_payments(ledger, artisan, 10_000, 25_000)
    refund_id = refunded(ledger, artisan, first, 4_000)
    assert ledger.shown(*RECEIVABLE) == 31_000
    data = readers.settlement_file(
        [capture(first, 10_000), capture(second, 25_000), refund_line(first, refund_id, 4_000)]
    )

    run, created = run_settlement(context, data)

    assert created and run.status == "completed"
    assert states_of(context, run.id) == {first: "matched", second: "matched", refund_id: "matched"}
    fees = domestic_fee(10_000) + domestic_fee(25_000)
    assert ledger.shown(*RECEIVABLE) == 0
    assert ledger.shown(*FEES) == fees
    assert ledger.shown(*CLIENT_FUNDS) == 31_000 - fees
    assert cases(context) == []
    assert run.counts["matched"] == 3 and sum(run.counts.values()) == 3
    [completed] = outbox(context, "accounts.reconciliation.run_completed")
    assert completed["data"]["run_id"] == run.id and completed["data"]["breaks"] == 0
    # Every posted line proves itself with its entry.
    for item in items_of(context, run.id):
        assert item.posted_entry_id and item.ledger_entry_id


def test_settled_lines_post_as_one_posting_each_would_with_their_events(context, ledger, readers, artisan):
    """Posted set-based, a chunk at a time: each line is still one balanced entry under its posting
    key, its zero lines left out, with one ``accounts.ledger.entry_posted`` event that passes its
    schema and names the lines written; the integrity check holds afterwards."""
    first, second, third = paid_payments(ledger, artisan, 10_000, 25_000, 7_000)
    settings_with(context, readers, posting_chunk_size=2)
    data = readers.settlement_file(
        [capture(first, 10_000), capture(second, 25_000), capture(third, 7_000, fee=0)]
    )

    run, _ = run_settlement(context, data)

    assert states_of(context, run.id) == {first: "matched", second: "matched", third: "fee_mismatch"}
    events = {
        event["data"]["entry_id"]: event
        for event in outbox(context, "accounts.ledger.entry_posted")
        if event["data"]["cause"] == "settlement"
    }
    with context.session_factory() as session:
        for item in items_of(context, run.id):
            entry = session.get(JournalEntry, item.posted_entry_id)
            assert entry.posting_key == settlement_posting_key("m2t", "capture", item.object_id)
            assert (entry.cause, entry.cause_id) == ("settlement", item.object_id)
            assert entry.description == f"Settlement of capture {item.object_id} by m2t (run {run.id})"
            lines = session.execute(
                sa.select(LedgerAccount.kind, JournalLine.amount, LedgerAccount.id)
                .join(LedgerAccount, LedgerAccount.id == JournalLine.account_id)
                .where(JournalLine.entry_id == entry.id)
                .order_by(JournalLine.id)
            ).all()
            expected = [
                (f"bank:{BANK}", item.net),
                ("gateway_fees", item.fee),
                ("gateway_receivable:m2t", -item.amount),
            ]
            assert [(kind, amount) for kind, amount, _ in lines] == [line for line in expected if line[1]]
            event = events.pop(entry.id)
            validate_event(event)
            assert event["subject"] == item.object_id and event["data"]["cause_id"] == item.object_id
            assert event["data"]["description"] == entry.description and event["data"]["event_id"] is None
            assert [(line["account"], line["kind"], line["amount"]) for line in event["data"]["lines"]] == [
                (account, kind, amount) for kind, amount, account in lines
            ]
    assert events == {}  # one event per entry, none else
    # Written as the outbox writes an event (compact JSON), though put together in SQL.
    with context.session_factory() as session:
        payloads = session.scalars(
            sa.select(OutboxMessage.payload).where(OutboxMessage.event_type == "accounts.ledger.entry_posted")
        ).all()
    for payload in payloads:
        assert payload == json.dumps(json.loads(payload), separators=(",", ":"), ensure_ascii=False)
    assert check_integrity(context.uow_factory())["ok"] is True


def test_the_same_file_again_returns_its_run_and_changes_nothing(context, ledger, readers, artisan):
    [payment] = paid_payments(ledger, artisan, 10_000)
    data = readers.settlement_file([capture(payment, 10_000), capture("pay_unknown", 500)])
    run, _ = run_settlement(context, data)
    entries, events = count(context, JournalEntry), len(outbox(context, ""))

    again, created = run_settlement(context, data)

    assert not created and again.id == run.id
    assert count(context, JournalEntry) == entries and len(outbox(context, "")) == events
    assert count(context, ReconFile) == 1 and len(cases(context)) == 1


def test_each_settlement_break_is_exactly_one_case(context, ledger, readers, artisan):
    on_time, dearer, duplicated, short, unsettled = paid_payments(
        ledger, artisan, 10_000, 20_000, 30_000, 40_000, 5_000
    )
    data = readers.settlement_file(
        [
            capture(on_time, 10_000),
            capture(dearer, 20_000, fee=domestic_fee(20_000) + 75),  # a fee above the schedule
            capture(duplicated, 30_000),
            capture(duplicated, 30_000),  # the same line twice
            capture(short, 39_990),  # the acquirer's gross is not the ledger's
            capture("pay_01JZZZZZZZZZZZZZZZZZZZZZZZ", 7_000),  # a transaction the ledger does not know
        ]
    )

    run, _ = run_settlement(context, data)

    assert states_of(context, run.id) == {
        on_time: "matched",
        dearer: "fee_mismatch",
        duplicated: "duplicate",  # the first line matched; the second is the duplicate
        short: "amount_mismatch",
        "pay_01JZZZZZZZZZZZZZZZZZZZZZZZ": "missing_in_ledger",
        unsettled: "missing_at_gateway",
    }
    by_kind = {case.kind: case for case in cases(context)}
    assert sorted(by_kind) == sorted(
        ["fee_mismatch", "duplicate", "amount_mismatch", "missing_in_ledger", "missing_at_gateway"]
    )
    assert len(cases(context)) == 5
    assert by_kind["fee_mismatch"].amount == 75
    assert by_kind["amount_mismatch"].amount == 10
    assert by_kind["missing_at_gateway"].object_id == unsettled
    # The fee mismatch is posted with what the acquirer took; the short line is not posted.
    settled = 10_000 + 20_000 + 30_000
    assert ledger.shown(*RECEIVABLE) == 40_000 + 5_000
    assert ledger.shown(*FEES) == domestic_fee(10_000) + domestic_fee(20_000) + 75 + domestic_fee(30_000)
    assert ledger.shown(*CLIENT_FUNDS) == settled - ledger.shown(*FEES)
    opened = outbox(context, "accounts.reconciliation.case_opened")
    assert len(opened) == 5


def test_a_late_settlement_line_heals_its_case(context, ledger, readers, artisan):
    early, late = paid_payments(ledger, artisan, 10_000, 12_000)
    first_run, _ = run_settlement(context, readers.settlement_file([capture(early, 10_000)]))
    [case] = cases(context)
    assert (case.kind, case.object_id, case.state) == ("missing_at_gateway", late, "open")

    second_run, _ = run_settlement(context, readers.settlement_file([capture(late, 12_000, batch="B2")]))

    [case] = cases(context)
    assert case.state == "resolved" and case.resolution["run_id"] == second_run.id
    assert states_of(context, second_run.id) == {late: "matched"}
    [healed] = [i for i in items_of(context, first_run.id) if i.object_id == late]
    assert healed.state == "matched" and healed.healed_by_run_id == second_run.id
    assert ledger.shown(*RECEIVABLE) == 0
    [resolved] = outbox(context, "accounts.reconciliation.case_resolved")
    assert (
        resolved["data"]["resolution"]["run_id"] == second_run.id and resolved["data"]["state"] == "resolved"
    )


def test_a_line_settled_by_an_earlier_file_is_a_duplicate_and_not_posted_again(
    context, ledger, readers, artisan
):
    [payment] = paid_payments(ledger, artisan, 10_000)
    run_settlement(context, readers.settlement_file([capture(payment, 10_000)]))
    funds = ledger.shown(*CLIENT_FUNDS)

    run, _ = run_settlement(
        context, readers.settlement_file([capture(payment, 10_000, batch="B9")], tag="resent")
    )

    assert states_of(context, run.id) == {payment: "duplicate"}
    assert ledger.shown(*CLIENT_FUNDS) == funds
    assert [case.kind for case in cases(context)] == ["duplicate"]


def test_lines_without_a_reference_are_each_a_break_not_duplicates_of_one_another(context, readers):
    foreign = [
        dataclasses.replace(capture("x", 900), reference="", transaction_id="m2t_tx_a"),
        dataclasses.replace(capture("x", 800), reference="", transaction_id="m2t_tx_b"),
    ]

    run, _ = run_settlement(context, readers.settlement_file(foreign))

    assert [item.state for item in items_of(context, run.id)] == ["missing_in_ledger", "missing_in_ledger"]
    assert [case.kind for case in cases(context)] == ["missing_in_ledger", "missing_in_ledger"]


def test_a_malformed_file_imports_nothing(context, ledger, readers, artisan):
    [payment] = paid_payments(ledger, artisan, 10_000)
    lines = [capture(payment, 10_000)]

    def half_then_broken(stream):
        yield from lines
        raise ValueError("line 2: gross_amount: not an integer")

    context.reconciliation = context.reconciliation.__class__(
        **{**context.reconciliation.__dict__, "read_settlement": half_then_broken}
    )
    entries = count(context, JournalEntry)
    with pytest.raises(UnreadableFile) as refused:
        run_settlement(context, b"broken")
    assert refused.value.errors == [{"reason": "line 2: gross_amount: not an integer"}]
    assert count(context, JournalEntry) == entries
    assert count(context, ReconItem) == 0 and count(context, ReconFile) == 0 and cases(context) == []


def test_a_reader_that_refuses_the_file_before_its_first_line_imports_nothing(context, readers):
    def refuses_at_once(stream):
        raise MalformedFile(
            "malformed settlement file", [{"line": 0, "reason": "empty file: no header line"}]
        )

    settings_with(context, readers, read_settlement=refuses_at_once)
    with pytest.raises(UnreadableFile) as refused:
        run_settlement(context, b"empty")
    assert refused.value.errors == [{"line": 0, "reason": "empty file: no header line"}]
    assert count(context, ReconItem) == 0 and count(context, ReconFile) == 0


# --- bank statements -------------------------------------------------------------------------------


def test_a_statement_matches_batches_and_payouts_posts_what_it_proves_and_balances(
    context, ledger, readers, artisan
):
    first, second = paid_payments(ledger, artisan, 10_000, 20_000)
    run_settlement(context, readers.settlement_file([capture(first, 10_000), capture(second, 20_000)]))
    batch_net = 30_000 - domestic_fee(10_000) - domestic_fee(20_000)
    payout = paid_payout(ledger, artisan, 6_000)
    returned = paid_payout(ledger, artisan, 2_500)
    closing = batch_net - 6_000 - 2_500 + 2_500 - 1_500 + 50_000
    data = readers.statement_file(
        [
            statement(
                [
                    entry(batch_net, "B1"),
                    entry(-6_000, payout.id),
                    entry(-2_500, returned.id),
                    entry(2_500, returned.id, "NRTI"),
                    entry(-1_500, "NONREF", "NCHG"),
                    entry(50_000, "RSV-cli_test_marketplace"),
                ],
                opening=0,
                closing=closing,
            )
        ]
    )

    run, _ = run_statement(context, data)

    assert {(i.kind, i.state) for i in items_of(context, run.id)} == {
        ("batch", "matched"),
        ("payout", "matched"),
        ("returned_payout", "matched"),
        ("bank_fee", "matched"),
        ("reserve_top_up", "matched"),
    }
    assert cases(context) == []
    assert run_row(context, run.id).expected_balance == closing == ledger.shown(*CLIENT_FUNDS)
    assert ledger.shown("platform", "platform", "bank_fees") == 1_500
    assert ledger.shown("marketplace", "cli_test_marketplace", "reserve") == 50_000
    with context.session_factory() as session:
        assert session.get(Payout, returned.id).status == "returned"
        assert session.scalar(
            sa.select(JournalEntry).where(JournalEntry.posting_key == f"payout:{returned.id}:returned")
        )
    [news] = outbox(context, "accounts.payout.returned")
    assert news["data"]["payout_id"] == returned.id and news["data"]["status"] == "returned"


def test_a_returned_payout_the_artisans_lowered_cap_refuses_is_a_break_not_a_failed_run(
    context, ledger, readers, artisan
):
    returned = paid_payout(ledger, artisan, 2_500)
    ledger.deliver(tier_changed(artisan, 0, version=2, previous=3))  # cap 0 while the money was away
    data = readers.statement_file(
        [statement([entry(-2_500, returned.id), entry(2_500, returned.id, "NRTI")], opening=0, closing=0)]
    )

    run, _ = run_statement(context, data)

    assert run_row(context, run.id).status == "completed"
    assert {(i.kind, i.state) for i in items_of(context, run.id)} == {
        ("payout", "matched"),
        ("returned_payout", "missing_in_ledger"),
    }
    # The line's case, and the balance's: the bank holds the 2,500 the ledger refused.
    assert {(case.kind, case.object_id, case.amount) for case in cases(context)} >= {
        ("missing_in_ledger", returned.id, 2_500)
    }
    assert {case.kind for case in cases(context)} == {"missing_in_ledger", "balance_mismatch"}
    with context.session_factory() as session:
        assert session.get(Payout, returned.id).status == "paid"
        assert not session.scalar(
            sa.select(JournalEntry).where(JournalEntry.posting_key == f"payout:{returned.id}:returned")
        )
        [refusal] = session.scalars(sa.select(LedgerCase)).all()
        assert (refusal.kind, refusal.cause, refusal.cause_id) == ("tier_cap_exceeded", "payout", returned.id)
    assert outbox(context, "accounts.payout.returned") == []


@pytest.mark.parametrize("bank_code", ["", "007", "14500"])
def test_a_statement_of_a_bank_reconciliation_does_not_know_imports_nothing(context, readers, bank_code):
    foreign = dataclasses.replace(
        statement([entry(-1_500, "NONREF", "NCHG")], closing=-1_500), bank_code=bank_code
    )
    entries = count(context, JournalEntry)

    with pytest.raises(UnreadableFile) as refused:
        run_statement(context, readers.statement_file([foreign]))

    assert refused.value.code == "malformed_file"
    assert count(context, JournalEntry) == entries
    assert count(context, ReconItem) == 0 and count(context, ReconFile) == 0 and cases(context) == []


@pytest.mark.parametrize("source", ["bank_statement", "gateway_settlement"])
@pytest.mark.parametrize("bank_code", ["", "007", "14500"])
def test_a_run_for_a_bank_reconciliation_does_not_know_is_refused(context, readers, source, bank_code):
    request = reconciliation.RunRequest(source=source, name="f", gateway="m2t", bank_code=bank_code)

    with pytest.raises(ValidationFailed) as refused:
        reconciliation.import_file(
            context.uow_factory, context.reconciliation, io.BytesIO(b"x"), request, "t"
        )

    assert refused.value.param == "bank_code"
    assert count(context, ReconFile) == 0


def test_each_statement_break_is_exactly_one_case(context, ledger, readers, artisan):
    [payment] = paid_payments(ledger, artisan, 10_000)
    run_settlement(context, readers.settlement_file([capture(payment, 10_000)]))
    batch_net = 10_000 - domestic_fee(10_000)
    never_debited = paid_payout(ledger, artisan, 3_000)
    lines = [entry(batch_net - 7, "B1"), entry(9_999, "SOMEONE-ELSE")]  # short by 7 centimes; unknown credit
    # The closing balance is the bank's: what it holds is the lines (the payout never left).
    data = readers.statement_file([statement(lines, closing=batch_net - 7 + 9_999)])

    run, _ = run_statement(context, data)

    states = {(i.kind, i.object_id): i.state for i in items_of(context, run.id)}
    assert states == {
        ("batch", "B1"): "amount_mismatch",
        ("other", "SOMEONE-ELSE"): "unidentified",
        ("payout", never_debited.id): "missing_in_bank",
    }
    kinds = sorted(case.kind for case in cases(context))
    assert kinds == ["amount_mismatch", "balance_mismatch", "missing_in_bank", "unidentified"]
    [balance] = cases(context, kind="balance_mismatch")
    # The ledger expects batch_net - 3,000 (the payout it believes paid); the bank holds the lines.
    assert balance.amount == abs((batch_net - 7 + 9_999) - (batch_net - 3_000))
    assert [c.amount for c in cases(context, kind="amount_mismatch")] == [7]


def test_a_payout_debited_on_a_later_statement_heals_missing_in_bank(context, ledger, readers, artisan):
    payout = paid_payout(ledger, artisan, 3_000)
    run_statement(context, readers.statement_file([statement([], closing=0)]))
    # The bank still holds the 3,000 the ledger believes paid out: its balance differs too.
    assert sorted(case.kind for case in cases(context)) == ["balance_mismatch", "missing_in_bank"]

    later, _ = run_statement(
        context, readers.statement_file([statement([entry(-3_000, payout.id)], closing=-3_000)])
    )

    [case] = cases(context, kind="missing_in_bank")
    assert case.state == "resolved" and case.resolution["run_id"] == later.id
    assert len(cases(context, kind="balance_mismatch")) == 1  # the later statement balances


def test_the_balance_rule_leaves_out_settlements_whose_batch_the_bank_has_not_credited(
    context, ledger, readers, artisan
):
    [payment] = paid_payments(ledger, artisan, 10_000)
    run_settlement(context, readers.settlement_file([capture(payment, 10_000)]))
    payout = paid_payout(ledger, artisan, 1_000)

    run, _ = run_statement(
        context, readers.statement_file([statement([entry(-1_000, payout.id)], closing=-1_000)])
    )

    assert run_row(context, run.id).expected_balance == -1_000
    assert cases(context) == []


# --- cases -----------------------------------------------------------------------------------------


def test_a_case_is_assigned_noted_resolved_and_its_history_kept(
    context, ledger, readers, artisan, issue_token
):
    run, _ = run_settlement(context, readers.settlement_file([capture("pay_unknown", 500)]))
    [case] = cases(context)
    from shared.auth.principal import Principal
    from shared.auth.scopes import ROLE_SCOPES, Role

    operator = Principal("cli_ops", Role.OPERATOR, ROLE_SCOPES[Role.OPERATOR], "tok")
    view = recon_cases.assign(context.uow_factory(), case.id, operator, "amina")
    assert view["state"] == "investigating" and view["assignee"] == "amina"
    recon_cases.add_note(context.uow_factory(), case.id, operator, "Asked M2T about it")
    view = recon_cases.resolve(context.uow_factory(), case.id, operator, note="test charge", run_id=run.id)
    assert view["state"] == "resolved" and view["notes"] == ["Asked M2T about it"]
    assert [h["action"] for h in view["history"]] == ["opened", "assigned", "noted", "resolved"]
    assert count(context, ReconCaseEvent) == 4


def test_adjustment_posted_writes_the_case_off(context, readers):
    run_settlement(context, readers.settlement_file([capture("pay_unknown", 500)]))
    [case] = cases(context)
    with context.uow_factory() as uow:
        recon_cases.adjustment_posted(uow, "adj_1", case.id, "je_1", "cli_ops_2")
        uow.commit()
    [case] = cases(context)
    assert case.state == "written_off" and case.resolution == {"adjustment_id": "adj_1", "entry_id": "je_1"}


def test_a_run_stopped_while_posting_is_finished_by_the_same_file_or_the_worker(
    context, ledger, readers, artisan
):
    from services.accounts.service_layer import reconciliation

    payments = paid_payments(ledger, artisan, 10_000, 11_000, 12_000)
    settings_with(context, readers, posting_chunk_size=1)
    data = readers.settlement_file(
        [capture(p, gross) for p, gross in zip(payments, (10_000, 11_000, 12_000), strict=True)]
    )
    real_post, chunks = reconciliation.post_settlements, []

    def crash_on_the_second_chunk(uow, run, size):
        chunks.append(size)
        if len(chunks) == 2:
            raise ConnectionError("the database went away")
        return real_post(uow, run, size)

    reconciliation.post_settlements = crash_on_the_second_chunk
    try:
        with pytest.raises(ConnectionError):
            run_settlement(context, data)
    finally:
        reconciliation.post_settlements = real_post
    [run] = [r for r in [run_row(context, i.run_id) for i in items_of_all(context)][:1]]
    assert run.status == "posting" and run.lines_done == 1 and ledger.shown(*RECEIVABLE) == 23_000
    assert cases(context) == [] and outbox(context, "accounts.reconciliation.run_completed") == []

    again, created = run_settlement(context, data)

    assert not created and again.id == run.id and again.status == "completed"
    assert ledger.shown(*RECEIVABLE) == 0 and run_row(context, run.id).lines_done == 3
    assert reconciliation.finish_unfinished_runs(context.uow_factory, context.reconciliation) == 0
    assert len(outbox(context, "accounts.reconciliation.run_completed")) == 1


def items_of_all(context) -> list[ReconItem]:
    with context.session_factory() as session:
        return list(session.scalars(sa.select(ReconItem).order_by(ReconItem.id)))
