"""Property: settlement files in any order, lines duplicated within and across files, files
received twice, lines the ledger does not know, and a statement crediting each batch, leave the
ledger sound and the money where it belongs.

Hypothesis draws captured payments (some partly refunded) and a list of settlement files, each a
random selection of the possible lines (captures and refunds, sometimes twice, sometimes an
unknown reference, sometimes the fee off the schedule), some files repeated as they are. A refund
is never settled after its capture's file (the acquirer's file of a day has both), so the
receivable never goes below zero. They run
in the drawn order, then a statement credits every batch. Afterwards:

- the ledger is sound (``check_integrity``: Σ lines = 0, each balance = Σ its lines);
- each capture and refund is settled at most once, whatever was repeated;
- ``gateway_receivable`` is what was captured and not yet settled (less refunds not yet settled),
  ``bank:{code}`` is the net of what was settled, ``gateway_fees`` the fees the acquirer took;
- every item is in exactly one state, every break has its case, and every capture the files left
  out is a ``missing_at_gateway`` case still open, while one a later file settled is resolved.
"""

from __future__ import annotations

import hypothesis
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.accounts.adapters.orm import JournalEntry
from services.accounts.adapters.reconciliation_orm import ReconCase, ReconItem
from services.accounts.service_layer.statements import check_integrity
from shared.db import utcnow
from tests.conftest import empty_database
from tests.ledger_support import LedgerDriver
from tests.recon_support import (
    FakeReaders,
    capture,
    domestic_fee,
    entry,
    paid_payments,
    refund_line,
    refunded,
    run_settlement,
    run_statement,
    settings_with,
    statement,
)

pytestmark = pytest.mark.integration

payments_drawn = st.lists(
    st.tuples(st.integers(min_value=1_000, max_value=90_000), st.booleans()), min_size=1, max_size=5
)


@st.composite
def files_drawn(draw, count: int) -> list[list[tuple[str, int, str]]]:
    """Files as (what, index, twist): what = capture | refund | unknown; twist = "" | "fee" | "twice"."""
    files: list[list[tuple[str, int, str]]] = []
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        lines = draw(
            st.lists(
                st.tuples(
                    st.sampled_from(["capture", "capture", "refund", "unknown"]),
                    st.integers(min_value=0, max_value=count - 1),
                    st.sampled_from(["", "", "", "fee", "twice"]),
                ),
                max_size=8,
            )
        )
        files.append(lines)
        if draw(st.booleans()):
            files.append(lines)  # the same file again (the same bytes)
    return files


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_settlement_runs_in_any_order_leave_the_money_where_it_belongs(data, accounts_app, database_urls):
    empty_database("accounts", database_urls["accounts"])
    context = accounts_app.extensions["hirfa"]
    ledger = LedgerDriver(accounts_app)
    readers = FakeReaders()
    settings_with(context, readers)
    artisan = ledger.artisan_at_tier(3)

    drawn = data.draw(payments_drawn)
    payments = paid_payments(ledger, artisan, *(amount for amount, _ in drawn))
    refunds = {}
    for (amount, with_refund), payment in zip(drawn, payments, strict=True):
        if with_refund:
            refunds[payment] = (refunded(ledger, artisan, payment, amount // 3), amount // 3)

    settled: dict[str, tuple[int, int, int]] = {}  # object id -> (gross, fee, net) posted
    batches: dict[str, int] = {}  # batch -> Σ net expected at the bank
    cache: dict[int, bytes] = {}
    for number, lines in enumerate(data.draw(files_drawn(len(payments)))):
        batch = f"B{number}"
        key = hash(repr(lines))
        if key not in cache:
            file_lines = []
            for what, index, twist in lines:
                payment = payments[index]
                gross = drawn[index][0]
                if what == "unknown":
                    line = capture(f"pay_UNKNOWN{index}", gross, batch=batch)
                elif what == "refund":
                    if payment not in refunds:
                        continue
                    refund_id, amount = refunds[payment]
                    line = refund_line(payment, refund_id, amount, batch=batch)
                else:
                    fee = domestic_fee(gross) + (7 if twist == "fee" else 0)
                    line = capture(payment, gross, fee=fee, batch=batch)
                file_lines += [line, line] if twist == "twice" else [line]
                if what == "capture" and payment in refunds:
                    # The acquirer settles a refund no later than the capture it refunds (its
                    # file of the day has both): a capture alone would owe back the refund.
                    refund_id, amount = refunds[payment]
                    file_lines.append(refund_line(payment, refund_id, amount, batch=batch))
            cache[key] = readers.settlement_file(file_lines, tag=batch)
            # What this file will settle: lines known to the ledger and not settled before.
            for line in file_lines:
                object_id = line.refund_reference or line.reference
                if object_id.startswith("pay_UNKNOWN") or object_id in settled:
                    continue
                settled[object_id] = (line.gross_amount, line.fee_amount, line.net_amount)
                batches[batch] = batches.get(batch, 0) + line.net_amount
        run_settlement(context, cache[key], day=utcnow().date())  # as the worker runs a day's file

    credits = [entry(net, batch) for batch, net in batches.items()]
    run_statement(context, readers.statement_file([statement(credits, closing=sum(batches.values()))]))

    report = check_integrity(context.uow_factory())
    assert report["differences"] == []
    captured = sum(amount for amount, _ in drawn) - sum(amount for _, amount in refunds.values())
    assert ledger.shown("platform", "platform", "gateway_receivable:m2t") == captured - sum(
        gross for gross, _, _ in settled.values()
    )
    assert ledger.shown("platform", "platform", "bank:145") == sum(net for _, _, net in settled.values())
    assert ledger.shown("platform", "platform", "gateway_fees") == sum(fee for _, fee, _ in settled.values())
    with context.session_factory() as session:
        postings = session.scalars(
            sa.select(JournalEntry.cause_id).where(JournalEntry.cause == "settlement")
        ).all()
        assert sorted(postings) == sorted(settled)
        items = session.scalars(sa.select(ReconItem)).all()
        assert all(item.state is not None for item in items)
        assert all(item.case_id for item in items if item.state != "matched")
        cases = {case.id: case for case in session.scalars(sa.select(ReconCase))}
        for payment in payments:
            waiting = [
                cases[i.case_id]
                for i in items
                if i.source == "ledger"
                and i.object_id == payment
                and i.case_id
                and i.state == "missing_at_gateway"
            ]
            if payment in settled:
                assert waiting == []  # settled by some file: any case about it was healed
            else:
                assert [case.state for case in waiting] == ["open"]
        assert not [c for c in cases.values() if c.kind == "balance_mismatch"]
    hypothesis.note(f"settled {sorted(settled)}")
