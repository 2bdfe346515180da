"""Posting a settlement run's matched lines set-based: a chunk of lines in a handful of statements.

A settled line is one journal entry (Dr ``bank:{code}`` net, Dr ``gateway_fees`` fee, Cr
``gateway_receivable:{gw}`` gross, or the inverse), exactly as ``posting.post_once`` would post it
from ``domain.reconciliation.settlement_lines`` under ``settlement_posting_key``. Posted one by one
that is a few hundred lines a second, so a million-line file would take over an hour. These lines
move platform accounts only, so no artisan rule (balance floor, tier cap) and no reserve watch
applies, and a chunk can be posted with a fixed number of statements whatever its size:

1. the chunk's three accounts are opened if needed and locked, in the order every posting locks in;
2. one INSERT … SELECT writes an entry per line (ids from a block reserved at once), skipping a
   posting key posted already (``ON CONFLICT DO NOTHING``): a line posts once, however often seen;
3. one UPDATE points each line at its entry, new or older;
4. one INSERT … SELECT writes the new entries' lines (zero amounts left out, as ``net_amounts``
   does) with their running balances (``ledger.balance_after_sql``), one UPDATE adds their sums to
   the three balances;
5. one INSERT … SELECT writes an ``accounts.ledger.entry_posted`` event per new entry into the
   outbox, its payload built in SQL from the line's item, as ``posting._write`` builds it.

Entries and lines are only inserted, so the journal's immutability triggers are untouched; the
balances move by the sums of the lines written, so the integrity check still holds.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from services.accounts.adapters import ledger
from services.accounts.adapters.orm import JournalEntry, JournalLine
from services.accounts.adapters.reconciliation_orm import ReconItem, ReconRun
from services.accounts.domain.ledger import AccountRef, UnbalancedEntry, bank, gateway_receivable, platform
from shared.db import UnitOfWork, UTCDateTime, is_postgres
from shared.ids import reserve_ulids, ulid_in_block, ulid_tail_sql

ENTRY_POSTED = "accounts.ledger.entry_posted"

# The run's lines that post an entry and have none yet, in one currency.
_PENDING = """run_id = :run AND state IN ('matched', 'fee_mismatch') AND posted_entry_id IS NULL
    AND currency = :currency"""
# The chunk: the pending lines among the next ``size`` (by id).
_CHUNK = _PENDING + " AND id BETWEEN :lower AND :upper"
# The chunk's lines whose entry this chunk wrote (the ids of the block reserved for it).
_NEW = "run_id = :run AND id BETWEEN :lower AND :upper AND posted_entry_id BETWEEN :first_id AND :last_id"
# The entry's description.
_DESCRIPTION = """substr('Settlement of ' || recon_items.kind || ' ' || recon_items.object_id || ' by '
    || CAST(:gateway AS VARCHAR(20)) || ' (run ' || CAST(:run AS VARCHAR(40)) || ')', 1, 200)"""
# ``domain.reconciliation.settlement_posting_key`` in SQL.
_POSTING_KEY = "'settlement:' || CAST(:gateway AS VARCHAR(20)) || ':' || recon_items.kind || ':' || recon_items.object_id"


def post_settlements(uow: UnitOfWork, run: ReconRun, size: int) -> int:
    """Post the entries of the next ``size`` matched lines of ``run`` not posted yet, in the
    caller's transaction (which holds the run's lock); how many lines that was (0: none left)."""
    session = uow.session
    assert session is not None
    first = session.execute(
        sa.text(
            f"SELECT id, currency FROM {ReconItem.__tablename__} "
            "WHERE run_id = :run AND state IN ('matched', 'fee_mismatch') AND posted_entry_id IS NULL "
            "ORDER BY id LIMIT 1"
        ),
        {"run": run.id},
    ).first()
    if first is None:
        return 0
    lower, currency = int(first.id), str(first.currency)
    params: dict[str, Any] = {"run": run.id, "currency": currency, "lower": lower, "size": size}
    params["upper"] = session.scalar(
        sa.text(
            f"SELECT MAX(id) FROM (SELECT id FROM {ReconItem.__tablename__} "
            f"WHERE {_PENDING} AND id >= :lower ORDER BY id LIMIT :size) chunk"
        ),
        params,
    )
    lines = int(
        session.scalar(sa.text(f"SELECT COUNT(*) FROM {ReconItem.__tablename__} WHERE {_CHUNK}"), params)
    )
    _refuse_unbalanced(session, params)

    gateway, bank_code = run.gateway or "", run.bank_code or ""
    refs = {"net": bank(bank_code), "fee": platform("gateway_fees"), "gross": gateway_receivable(gateway)}
    accounts = ledger.lock_accounts(session, refs.values(), currency)
    span = params["upper"] - lower + 1
    head, tail = reserve_ulids(span)
    now = dt.datetime.now(dt.UTC)
    params.update(
        gateway=gateway,
        head=head,
        tail=tail,
        first_id="je_" + ulid_in_block(head, tail),
        last_id="je_" + ulid_in_block(head, tail + span - 1),
        posted_at=now,
        bank=accounts[refs["net"]].id,
        fees=accounts[refs["fee"]].id,
        receivable=accounts[refs["gross"]].id,
    )
    new_id = f"'je_' || CAST(:head AS VARCHAR(18)) || {ulid_tail_sql(':tail + (recon_items.id - :lower)')}"
    insert_entries = f"""INSERT INTO {JournalEntry.__tablename__}
            (id, cause, cause_id, cause_event_id, posting_key, artisan_id, description, posted_at, reverses_entry_id)
        SELECT {new_id}, 'settlement', recon_items.object_id, NULL, {_POSTING_KEY}, NULL, {_DESCRIPTION}, :posted_at, NULL
        FROM {ReconItem.__tablename__} WHERE {_CHUNK}
        ON CONFLICT (posting_key) DO NOTHING"""
    execute_sql(session, insert_entries, **params)
    # Each line to its entry: the one just written, or the one its posting key had already.
    execute_sql(
        session,
        f"""UPDATE {ReconItem.__tablename__} SET posted_entry_id = (
                SELECT e.id FROM {JournalEntry.__tablename__} e WHERE e.posting_key = {_POSTING_KEY})
            WHERE {_CHUNK}""",
        **params,
    )
    balance_after, opening = ledger.balance_after_sql(
        {account.id: account.balance for account in accounts.values()},
        account_id="account_id",
        amount="amount",
        order_by="item_id, n",
    )
    execute_sql(
        session,
        f"""INSERT INTO {JournalLine.__tablename__} (entry_id, account_id, amount, currency, posted_at, balance_after)
            SELECT entry_id, account_id, amount, currency, :posted_at, {balance_after} FROM (
                SELECT posted_entry_id AS entry_id, id AS item_id, k.n AS n, currency,
                       CASE k.n WHEN 1 THEN CAST(:bank AS VARCHAR(40)) WHEN 2 THEN CAST(:fees AS VARCHAR(40))
                            ELSE CAST(:receivable AS VARCHAR(40)) END AS account_id,
                       CASE k.n WHEN 1 THEN net WHEN 2 THEN fee ELSE -amount END AS amount
                FROM {ReconItem.__tablename__}
                CROSS JOIN (SELECT 1 AS n UNION ALL SELECT 2 UNION ALL SELECT 3) k
                WHERE {_NEW}
            ) line
            WHERE amount <> 0
            ORDER BY item_id, n""",
        **params,
        **opening,
    )
    sums = session.execute(
        sa.text(
            f"SELECT COALESCE(SUM(net), 0), COALESCE(SUM(fee), 0), COALESCE(SUM(amount), 0) "
            f"FROM {ReconItem.__tablename__} WHERE {_NEW}"
        ),
        params,
    ).one()
    ledger.add_to_balances(
        session,
        accounts,
        {refs["net"]: int(sums[0]), refs["fee"]: int(sums[1]), refs["gross"]: -int(sums[2])},
    )
    _write_events(uow, session, params, refs, now)
    return lines


def _refuse_unbalanced(session: Session, params: dict[str, Any]) -> None:
    """A line whose net and fee do not add up to its gross cannot be posted (``post_once`` refuses
    it too): the run stops, as it would have."""
    wrong = session.execute(
        sa.text(
            f"""SELECT kind, object_id, amount, fee, net FROM {ReconItem.__tablename__}
                WHERE {_CHUNK} AND (net IS NULL OR fee IS NULL OR net + fee <> amount
                                    OR (amount = 0 AND fee = 0)) LIMIT 1"""
        ),
        params,
    ).first()
    if wrong is not None:
        raise UnbalancedEntry(
            f"Settlement of {wrong.kind} {wrong.object_id}: net {wrong.net} + fee {wrong.fee} is not gross {wrong.amount}"
        )


def _write_events(
    uow: UnitOfWork, session: Session, params: dict[str, Any], refs: dict[str, AccountRef], now: dt.datetime
) -> None:
    """One ``accounts.ledger.entry_posted`` per new entry: the payload ``posting._write`` builds,
    in ``make_event``'s envelope, written as the outbox writes it (``json.dumps`` with compact
    separators), from each line's item, which holds all an entry says (its three accounts are the
    chunk's). The event's id is the entry's ULID under the ``evt`` prefix: reserved for this
    entry, it names nothing else.

    The JSON is put together as text: what is the same for every event of the chunk comes written
    by ``json.dumps`` (as parameters), each value of a line quoted by the database's own JSON
    function; building JSON objects value by value costs more than the rest of the posting."""
    outbox = uow.outbox
    if outbox is None:
        raise RuntimeError("this unit of work has no outbox but events were recorded")

    def quoted(sql: str) -> str:
        if is_postgres(session):
            return f"CAST(to_json(CAST({sql} AS TEXT)) AS TEXT)"
        return f"json_quote({sql})"

    def after(key: str, value: Any = None, *, first: bool = False, opened: bool = False) -> str:
        """JSON text up to the value of ``key`` (``value`` written in, if given)."""
        text = ("" if first else ",") + json.dumps(key) + ":"
        return (
            text
            + (json.dumps(value, separators=(",", ":")) if value is not None else "")
            + ("" if opened else "")
        )

    time = now.isoformat(timespec="microseconds").replace("+00:00", "Z")
    fragments = {
        "json_id": "{" + after("id", first=True) + '"evt_',
        "json_subject": '"' + after("type", ENTRY_POSTED) + after("source", "accounts") + after("subject"),
        "json_entry": after("time", time)
        + after("schema_version", 1)
        + ","
        + json.dumps("data")
        + ":{"
        + after("entry_id", first=True)
        + '"',
        "json_cause": '"' + after("cause", "settlement") + after("cause_id"),
        "json_description": ',"event_id":null,"artisan_id":null' + after("description"),
        "json_lines": after("posted_at", now.isoformat()) + after("lines") + "[",
        "json_currency": after("currency"),
    }
    sides = (
        ("bank", "net", "recon_items.net"),
        ("fees", "fee", "recon_items.fee"),
        ("receivable", "gross", "-recon_items.amount"),
    )
    lines = []
    for side, ref_name, amount in sides:
        ref = refs[ref_name]
        account = {
            "account": params[side],
            "owner_type": ref.owner_type,
            "owner_id": ref.owner_id,
            "kind": ref.kind,
        }
        fragments[f"json_{side}"] = (
            ",{"
            + "".join(after(key, value, first=not n) for n, (key, value) in enumerate(account.items()))
            + after("amount")
        )
        # A zero line is not written: none is announced.
        lines.append(
            f"CASE WHEN {amount} <> 0 THEN :json_{side} || CAST({amount} AS VARCHAR(24)) || :json_currency "
            f"|| {quoted('recon_items.currency')} || '}}' ELSE '' END"
        )
    payload = (
        f":json_id || substr(recon_items.posted_entry_id, 4) || :json_subject || {quoted('recon_items.object_id')} "
        f"|| :json_entry || recon_items.posted_entry_id || :json_cause || {quoted('recon_items.object_id')} "
        f"|| :json_description || {quoted(_DESCRIPTION)} || :json_lines "
        # Each line written starts with a comma: the first one is dropped.
        f"|| substr({' || '.join(lines)}, 2) || ']}}}}'"
    )
    execute_sql(
        session,
        f"""INSERT INTO {outbox.model.__tablename__}
                (event_id, event_type, topic, key, payload, created_at, available_at, attempts)
            SELECT 'evt_' || substr(recon_items.posted_entry_id, 4), '{ENTRY_POSTED}', CAST(:topic AS VARCHAR(120)),
                   recon_items.object_id, {payload}, :created_at, :created_at, 0
            FROM {ReconItem.__tablename__} WHERE {_NEW}
            ORDER BY recon_items.id""",
        **params,
        **fragments,
        topic=outbox.topic,
        created_at=now,
    )


def execute_sql(session: Session, sql: str, **params: Any) -> sa.CursorResult[Any]:
    """A set-based statement (reconciliation's and this module's), its datetimes and dates bound
    through the column types; only the parameters it names are sent."""
    used = {name: value for name, value in params.items() if re.search(rf":{name}\b", sql)}
    typed = [
        sa.bindparam(name, type_=UTCDateTime() if isinstance(value, dt.datetime) else sa.Date())
        for name, value in used.items()
        if isinstance(value, dt.date)
    ]
    statement = sa.text(sql)
    if typed:
        statement = statement.bindparams(*typed)
    return session.execute(statement, used)
