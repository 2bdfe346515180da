"""``make bench``'s history part: does a call cost more once the databases hold a long history?

Two pairs of fresh databases (accounts, payments), in one run:

- empty: one artisan with a short history, made the production way: ``SHORT_HISTORY`` payments
  posted through the accounts consumer and as many created through ``POST /v1/payments``;
- history: the same, after COPY laid ``HISTORY_BENCH_ENTRIES`` journal entries (two lines each:
  the artisan's pending account and the gateway receivable) and ``HISTORY_BENCH_PAYMENTS``
  payments (default 1,000,000 each) over 10,000 artisans, half of each on the measured artisan.

Each call's p50 (``HISTORY_BENCH_SAMPLES`` calls through the Flask test client) on both, and their
ratio (the goal: within 20 %). On the short history, page 1,000 and the deep pages are its last
page: the same query shapes. Then each call's SQL statements are explained on the history
databases and the key facts printed: the tables read and how, and any sequential scan of a large
table, which is the cost that grows with history.

Not a test: nothing here asserts a time. PostgreSQL only (COPY); on SQLite it says so and stops.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import logging
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import Flask

from services.accounts.adapters import ledger
from services.accounts.adapters.orm import JournalLine, LedgerAccount
from services.accounts.app import create_app as create_accounts_app
from services.accounts.config import AccountsConfig
from services.accounts.domain.ledger import gateway_receivable
from services.accounts.service_layer.statements import check_integrity
from services.payments.adapters.gateways.fake import FakeGateway
from services.payments.adapters.orm import Payee, PayeeMarketplace, Payment
from services.payments.app import create_app as create_payments_app
from services.payments.config import PaymentsConfig
from services.payments.domain.gateway import GatewayRegistry
from shared.auth.keys import SigningKeyStore
from shared.auth.scopes import ROLE_SCOPES, Role
from shared.auth.tokens import TokenIssuer
from shared.config import PROJECT_ROOT
from shared.db import run_migrations
from shared.ids import new_id, reserve_ulids, ulid_in_block
from tests.ledger_support import CAPS, MARKETPLACE, LedgerDriver, payment_succeeded
from tests.support import Databases

ISSUER = "https://auth.hirfa.ma"
ARTISANS = 10_000
SHORT_HISTORY = 60  # three statement pages
PAGE = 20  # the statement's default page size
GROSS = 1_000  # each seeded entry moves 10 MAD: a payment, then its refund
PAGE_1000 = 999 * PAGE  # the cursor of page 1,000: the last line of page 999
DEEP = 0.8  # the deep page: four fifths into the artisan's history
HISTORY_TABLES = ("journal_lines", "journal_entries", "payments", "ledger_accounts", "payees")


@dataclasses.dataclass
class Stack:
    """Accounts and payments on one pair of databases, and the artisan every call is about."""

    label: str
    accounts: Flask
    payments: Flask
    artisan_id: str
    headers: dict[str, str]
    pending_account: str = ""

    def dispose(self) -> None:
        for app in (self.accounts, self.payments):
            app.extensions["hirfa"].engine.dispose()


def main() -> None:
    entries = int(os.environ.get("HISTORY_BENCH_ENTRIES", "1000000"))
    payments = int(os.environ.get("HISTORY_BENCH_PAYMENTS", "1000000"))
    samples = int(os.environ.get("HISTORY_BENCH_SAMPLES", "101"))
    with tempfile.TemporaryDirectory() as directory:
        databases = Databases(Path(directory))
        if databases.backend != "postgresql":
            print("\nhistory: needs PostgreSQL (the history is laid with COPY); skipped on SQLite")
            return
        print(
            f"\ncost with history: {entries:,} journal entries ({2 * entries:,} lines) and {payments:,} payments "
            f"over {ARTISANS:,} artisans, half on the measured one; p50 of {samples} calls each"
        )
        logging.getLogger("alembic").setLevel(logging.WARNING)  # a line per migration, twice over
        keys = SigningKeyStore(Path(directory) / "keys")
        keys.generate()
        stacks = []
        try:
            for label, seeded in (("empty", (0, 0)), ("history", (entries, payments))):
                started = time.perf_counter()
                stack = make_stack(databases, keys, Path(directory), label, *seeded)
                stacks.append(stack)
                if seeded[0] or seeded[1]:
                    print(f"  history laid in {time.perf_counter() - started:,.0f} s")
            calls = [list_calls(stack) for stack in stacks]
            print(f"  {'call':<46} {'empty p50':>10} {'history p50':>12} {'ratio':>7}")
            for name in calls[0]:
                empty, history = paired_p50(calls[0][name], calls[1][name], samples)
                verdict = "" if history <= empty * 1.2 else "  (above 1.2)"
                print(
                    f"  {name:<46} {empty * 1000:>8.2f} ms {history * 1000:>9.2f} ms {history / empty:>6.2f}x{verdict}"
                )
            print("  query plans on the history databases (tables read, and how):")
            for name, call in calls[1].items():
                print(f"  {name}: {explain_call(stacks[1], call)}")
            # The measured artisan holds half of every table, so reading in id order and skipping
            # the others' rows is the planner's right choice for them; any other artisan's pages
            # come from the per-artisan indexes.
            for name, call in other_artisan_calls(stacks[1]).items():
                print(f"  {name}: {explain_call(stacks[1], call)}")
            started = time.perf_counter()
            report = check_integrity(stacks[1].accounts.extensions["hirfa"].uow_factory())
            verdict = "ok" if report["ok"] else f"NOT OK: {report['differences'][:3]}"
            print(
                f"  integrity of the history ledger: {verdict} ({report['entries_checked']:,} entries, "
                f"{time.perf_counter() - started:,.1f} s)"
            )
        finally:
            for stack in stacks:
                stack.dispose()
            databases.drop_all()


# -- the two stacks --------------------------------------------------------------------------------


def make_stack(
    databases: Databases, keys: SigningKeyStore, directory: Path, label: str, entries: int, payments: int
) -> Stack:
    urls = {}
    for service in ("accounts", "payments"):
        urls[service] = databases.create(f"history_{label}_{service}")
        run_migrations(PROJECT_ROOT / "services" / service, urls[service])
    common = {
        "var_dir": str(directory / label),
        "token_issuer": ISSUER,
        "kafka_bootstrap_servers": "127.0.0.1:1",
        "log_json": False,
        "log_level": "WARNING",  # a line per request would bury the figures
    }
    key_lookup = keys.public_keys().get
    accounts = create_accounts_app(
        AccountsConfig(service_name="accounts", database_url=urls["accounts"], **common),
        key_lookup=key_lookup,
    )
    payments_app = create_payments_app(
        PaymentsConfig(service_name="payments", database_url=urls["payments"], **common),
        key_lookup=key_lookup,
        gateways=GatewayRegistry({"fake": FakeGateway()}),
        default_gateway="fake",
    )
    token, _ = TokenIssuer(keys, ISSUER, ttl_seconds=3600).issue(
        client_id=MARKETPLACE,
        role=Role.MARKETPLACE,
        scopes=ROLE_SCOPES[Role.MARKETPLACE],
        audiences=["hirfa-accounts", "hirfa-payments"],
    )
    driver = LedgerDriver(accounts)
    artisan_id = driver.artisan_at_tier(3)
    stack = Stack(label, accounts, payments_app, artisan_id, {"Authorization": f"Bearer {token}"})
    with accounts.extensions["hirfa"].session_factory() as session:
        ledger.account_for(session, gateway_receivable("m2t"), "MAD")
        session.commit()
        stack.pending_account = session.scalar(
            sa.select(LedgerAccount.id).where(
                LedgerAccount.owner_id == artisan_id, LedgerAccount.kind == "pending"
            )
        )
    lay_payees(stack, ARTISANS if payments else 1)
    if entries:
        lay_journal(stack, entries)
    if payments:
        lay_payments(stack, payments)
    # The short history, the production way, on top of whatever was laid.
    for _ in range(SHORT_HISTORY):
        driver.deliver(payment_succeeded(artisan_id, 1_000, 100))
        create_payment(stack)
    # As a ledger in service has them: statistics fresh, and every page vacuumed (the first reads
    # of freshly loaded rows would otherwise write their hint bits, and autovacuum would come by
    # in the middle of the measurement), the dirty pages written out.
    for app in (accounts, payments_app):
        with (
            app.extensions["hirfa"]
            .engine.connect()
            .execution_options(isolation_level="AUTOCOMMIT") as connection
        ):
            connection.execute(sa.text("VACUUM (ANALYZE)"))
            connection.execute(sa.text("CHECKPOINT"))
    return stack


def create_payment(stack: Stack) -> None:
    body = {
        "artisan_id": stack.artisan_id,
        "amount": 1_000,
        "currency": "MAD",
        "application_fee": 100,
        "payment_method_type": "card",
    }
    response = stack.payments.test_client().post(
        "/v1/payments", json=body, headers={**stack.headers, "Idempotency-Key": str(uuid.uuid4())}
    )
    assert response.status_code == 201, response.get_data(as_text=True)


# -- laying the history with COPY ------------------------------------------------------------------


def copy_rows(app: Flask, table: str, columns: list[str], rows: Iterator[Sequence[Any]]) -> None:
    """COPY ``rows`` into ``table`` (text format; None is NULL), in chunks of 50,000, the usual way
    to bulk-load: the table's indexes that back no constraint are dropped meanwhile and built again
    afterwards, at once, and the foreign keys are not checked row by row (the rows are made
    consistent here; the integrity check runs on the result)."""
    raw = app.extensions["hirfa"].engine.raw_connection()
    try:
        connection = raw.driver_connection
        with connection.cursor() as cursor:
            cursor.execute("SET synchronous_commit = off")
            cursor.execute("SET session_replication_role = replica")
            cursor.execute(
                "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) FROM pg_index i "
                "WHERE i.indrelid = %s::regclass AND NOT EXISTS "
                "(SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)",
                (table,),
            )
            indexes = cursor.fetchall()
            for name, _ in indexes:
                cursor.execute(f"DROP INDEX {name}")
            with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                buffer = io.StringIO()
                for number, row in enumerate(rows, 1):
                    buffer.write("\t".join(r"\N" if value is None else str(value) for value in row))
                    buffer.write("\n")
                    if number % 50_000 == 0:
                        copy.write(buffer.getvalue())
                        buffer = io.StringIO()
                copy.write(buffer.getvalue())
            for _, definition in indexes:
                cursor.execute(definition)
        connection.commit()
    finally:
        raw.close()


def other_artisans() -> list[str]:
    return [f"art_SEED{number:022d}" for number in range(ARTISANS - 1)]


def lay_payees(stack: Stack, artisans: int) -> None:
    """The measured artisan (and ``artisans`` - 1 others) as payments' payees, at tier 3."""
    now = dt.datetime.now(dt.UTC).isoformat()
    payees = [stack.artisan_id, *other_artisans()[: artisans - 1]]
    copy_rows(
        stack.payments,
        Payee.__tablename__,
        [
            "artisan_id",
            "kyc_tier",
            "tier_cap_amount",
            "currency",
            "payout_eligible",
            "kyc_status",
            "kyc_version",
        ]
        + ["as_of", "ledger_balance", "updated_at"],
        ((artisan, 3, CAPS[3], "MAD", "t", "active", 1, now, 0, now) for artisan in payees),
    )
    copy_rows(
        stack.payments,
        PayeeMarketplace.__tablename__,
        ["artisan_id", "marketplace_id"],
        ((artisan, MARKETPLACE) for artisan in payees),
    )


def lay_journal(stack: Stack, entries: int) -> None:
    """``entries`` entries, in pairs (a payment of 10 MAD to an artisan's pending account from the
    gateway receivable, then its refund), every other pair the measured artisan's: its balance
    runs 0, 10, 0, … and each line's ``balance_after`` says so. Posted a minute apart, ending
    before the short history."""
    context = stack.accounts.extensions["hirfa"]
    others = other_artisans()
    with context.session_factory() as session:
        receivable = session.scalar(
            sa.select(LedgerAccount.id).where(LedgerAccount.kind == "gateway_receivable:m2t")
        )
    # The others' pending accounts (their available ones are opened too, and stay empty).
    accounts = {artisan: new_id("acct") for artisan in others}
    copy_rows(
        stack.accounts,
        "ledger_accounts",
        ["id", "owner_type", "owner_id", "kind", "currency", "normal_side", "balance", "opened_at"],
        (
            (
                account_id if kind == "pending" else new_id("acct"),
                "artisan",
                artisan,
                kind,
                "MAD",
                "credit",
                0,
                "2024-01-01T00:00:00+00:00",
            )
            for artisan, account_id in accounts.items()
            for kind in ("pending", "available")
        ),
    )
    copy_rows(
        stack.accounts,
        "artisan_marketplaces",
        ["artisan_id", "marketplace_id"],
        ((a, MARKETPLACE) for a in others),
    )
    first = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=entries + 10)
    head, tail = reserve_ulids(entries)

    def owner(number: int) -> tuple[str, str]:
        pair = number // 2
        if pair % 2 == 0:
            return stack.artisan_id, stack.pending_account
        artisan = others[(pair // 2) % len(others)]
        return artisan, accounts[artisan]

    def entry_rows() -> Iterator[tuple[Any, ...]]:
        for number in range(entries):
            artisan, _ = owner(number)
            cause = "payment" if number % 2 == 0 else "refund"
            posted_at = (first + dt.timedelta(minutes=number)).isoformat()
            yield (
                "je_" + ulid_in_block(head, tail + number),
                cause,
                f"seed_{number // 2}",
                None,
                f"seed:{number}",
                artisan,
                "Seeded history",
                posted_at,
                None,
            )

    balances: dict[str, int] = {}

    def line_rows() -> Iterator[tuple[Any, ...]]:
        for number in range(entries):
            _, pending = owner(number)
            entry_id = "je_" + ulid_in_block(head, tail + number)
            posted_at = (first + dt.timedelta(minutes=number)).isoformat()
            amount = GROSS if number % 2 == 0 else -GROSS  # the receivable's side; pending the opposite
            for offset, (account, moved) in enumerate(((receivable, amount), (pending, -amount))):
                balances[account] = balances.get(account, 0) + moved
                yield (2 * number + offset + 1, entry_id, account, moved, "MAD", posted_at, balances[account])

    copy_rows(
        stack.accounts,
        "journal_entries",
        ["id", "cause", "cause_id", "cause_event_id", "posting_key", "artisan_id", "description", "posted_at"]
        + ["reverses_entry_id"],
        entry_rows(),
    )
    copy_rows(
        stack.accounts,
        JournalLine.__tablename__,
        ["id", "entry_id", "account_id", "amount", "currency", "posted_at", "balance_after"],
        line_rows(),
    )
    with context.engine.begin() as connection:
        connection.execute(
            sa.text(
                "SELECT setval(pg_get_serial_sequence('journal_lines', 'id'), (SELECT MAX(id) FROM journal_lines))"
            )
        )
        for account, balance in balances.items():
            connection.execute(
                sa.text("UPDATE ledger_accounts SET balance = :balance WHERE id = :id"),
                {"balance": balance, "id": account},
            )


def lay_payments(stack: Stack, count: int) -> None:
    """``count`` payments, every other one to the measured artisan: settled and posted, but for a
    few failed and a handful still in flight (what the tier cap counts)."""
    others = other_artisans()
    columns = [column for column in Payment.__table__.columns]
    first = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=count + 10)
    head, tail = reserve_ulids(count)

    # Every column as a settled payment has it; each row changes a few.
    settled = {
        "marketplace_id": MARKETPLACE,
        "amount": GROSS,
        "currency": "MAD",
        "application_fee": 100,
        "payment_method_type": "card",
        "capture_method": "automatic",
        "status": "succeeded",
        "metadata": "{}",
        "gateway": "fake",
        "gateway_updated_at": 0,
        "amount_captured": GROSS,
        "amount_refunded": 0,
        "application_fee_refunded": 0,
        "ledger_posted": "t",
    }
    template = [settled.get(column.name) for column in columns]
    where = {column.name: number for number, column in enumerate(columns)}
    unsettled = {"failed": "f", "processing": "f"}

    def rows() -> Iterator[list[Any]]:
        for number in range(count):
            row = list(template)
            at = (first + dt.timedelta(minutes=number)).isoformat()
            row[where["id"]] = "pay_" + ulid_in_block(head, tail + number)
            row[where["artisan_id"]] = (
                stack.artisan_id if number % 2 == 0 else others[(number // 2) % len(others)]
            )
            row[where["gateway_reference"]] = f"gw_seed_{number}"
            row[where["created_at"]] = row[where["updated_at"]] = at
            status = "failed" if number % 100 == 1 else "processing" if number % 100_000 == 2 else None
            if status is not None:
                row[where["status"]], row[where["ledger_posted"]] = status, unsettled[status]
                row[where["amount_captured"]] = 0
            yield row

    copy_rows(stack.payments, Payment.__tablename__, [column.name for column in columns], rows())


# -- the calls -------------------------------------------------------------------------------------


def list_calls(stack: Stack) -> dict[str, Callable[[], Any]]:
    accounts, payments = stack.accounts.test_client(), stack.payments.test_client()
    statement = f"/v1/artisans/{stack.artisan_id}/transactions"
    total, line_at = artisan_lines(stack)
    # On a short history, page 1,000 and the deep pages are its last page.
    positions = {"page 2": PAGE, "page 1,000": PAGE_1000, "deep": int(total * DEEP)}
    cursors = {name: line_at(min(position, total - PAGE)) for name, position in positions.items()}

    def statement_page(query: dict[str, str]) -> Callable[[], Any]:
        query = {"account": "pending", **query}
        return lambda: ok(accounts.get(statement, headers=stack.headers, query_string=query))

    def payments_page(query: dict[str, str]) -> Callable[[], Any]:
        query = {"artisan_id": stack.artisan_id, **query}
        return lambda: ok(payments.get("/v1/payments", headers=stack.headers, query_string=query))

    deep_payment = nth_payment(stack, DEEP)
    driver = LedgerDriver(stack.accounts)
    return {
        "statement, page 2": statement_page({"starting_after": cursors["page 2"][0]}),
        "statement, page 1,000": statement_page({"starting_after": cursors["page 1,000"][0]}),
        "statement, deep page (cursor)": statement_page({"starting_after": cursors["deep"][0]}),
        "statement, deep page (date range)": statement_page({"from": cursors["deep"][1]}),
        "GET /v1/payments?artisan_id=": payments_page({}),
        "GET /v1/payments?artisan_id= deep page": payments_page({"starting_after": deep_payment}),
        "POST /v1/payments": lambda: create_payment(stack),
        "ledger posting through the consumer (1 event)": lambda: driver.deliver(
            payment_succeeded(stack.artisan_id, 1_000, 100)
        ),
    }


def other_artisan_calls(stack: Stack) -> dict[str, Callable[[], Any]]:
    """A page 2 of one of the other 9,999 artisans' statement and payments."""
    artisan_id = other_artisans()[0]
    with stack.accounts.extensions["hirfa"].engine.connect() as connection:
        cursor = connection.scalar(
            sa.text(
                "SELECT l.id FROM journal_lines l JOIN ledger_accounts a ON a.id = l.account_id "
                "WHERE a.owner_id = :artisan AND a.kind = 'pending' ORDER BY l.id OFFSET :n LIMIT 1"
            ),
            {"artisan": artisan_id, "n": PAGE - 1},
        )
    with stack.payments.extensions["hirfa"].engine.connect() as connection:
        after = connection.scalar(
            sa.text("SELECT id FROM payments WHERE artisan_id = :a ORDER BY id OFFSET :n LIMIT 1"),
            {"a": artisan_id, "n": PAGE - 1},
        )
    accounts, payments = stack.accounts.test_client(), stack.payments.test_client()
    return {
        "another artisan's statement, page 2": lambda: ok(
            accounts.get(
                f"/v1/artisans/{artisan_id}/transactions",
                headers=stack.headers,
                query_string={"account": "pending", "starting_after": cursor},
            )
        ),
        "another artisan's payments, page 2": lambda: ok(
            payments.get(
                "/v1/payments",
                headers=stack.headers,
                query_string={"artisan_id": artisan_id, "starting_after": after},
            )
        ),
    }


def ok(response: Any) -> None:
    assert response.status_code == 200, response.get_data(as_text=True)


def artisan_lines(stack: Stack) -> tuple[int, Callable[[int], tuple[str, str]]]:
    """How many lines the measured artisan's pending account has, and the (id, posted_at) of its
    n-th line (1-based), read untimed."""
    engine = stack.accounts.extensions["hirfa"].engine
    with engine.connect() as connection:
        total = int(
            connection.scalar(
                sa.text("SELECT COUNT(*) FROM journal_lines WHERE account_id = :a"),
                {"a": stack.pending_account},
            )
        )

    def line_at(position: int) -> tuple[str, str]:
        with engine.connect() as connection:
            row = connection.execute(
                sa.text(
                    "SELECT id, posted_at FROM journal_lines WHERE account_id = :a ORDER BY id OFFSET :n LIMIT 1"
                ),
                {"a": stack.pending_account, "n": position - 1},
            ).one()
        return str(row.id), row.posted_at.isoformat()

    return total, line_at


def payment_count(stack: Stack) -> int:
    with stack.payments.extensions["hirfa"].engine.connect() as connection:
        return int(
            connection.scalar(
                sa.text("SELECT COUNT(*) FROM payments WHERE artisan_id = :a"), {"a": stack.artisan_id}
            )
        )


def nth_payment(stack: Stack, fraction: float) -> str:
    """The id of the measured artisan's payment ``fraction`` into their history (at most the one
    starting their last page)."""
    total = payment_count(stack)
    with stack.payments.extensions["hirfa"].engine.connect() as connection:
        return str(
            connection.scalar(
                sa.text("SELECT id FROM payments WHERE artisan_id = :a ORDER BY id OFFSET :n LIMIT 1"),
                {"a": stack.artisan_id, "n": min(int(total * fraction), total - PAGE)},
            )
        )


def paired_p50(empty: Callable[[], Any], history: Callable[[], Any], samples: int) -> tuple[float, float]:
    """The p50 of each call, timed in turns (empty then history, history then empty, …) so that
    whatever else the machine does, and going first, weigh on both alike."""
    for _ in range(3):
        empty()
        history()
    times: dict[Callable[[], Any], list[float]] = {empty: [], history: []}
    for sample in range(samples):
        for call in (empty, history) if sample % 2 == 0 else (history, empty):
            started = time.perf_counter()
            call()
            times[call].append(time.perf_counter() - started)
    return statistics.median(times[empty]), statistics.median(times[history])


# -- query plans -----------------------------------------------------------------------------------


def explain_call(stack: Stack, call: Callable[[], Any]) -> str:
    """The statements one call sends, explained: each large table read and how, and a warning for
    any sequential scan of one."""
    recorded: list[tuple[Any, str, Any]] = []
    engines = [app.extensions["hirfa"].engine for app in (stack.accounts, stack.payments)]

    def recorder(engine: sa.Engine) -> Callable[..., None]:
        def record(_connection: Any, _cursor: Any, statement: str, parameters: Any, *_rest: Any) -> None:
            recorded.append((engine, statement, parameters))

        return record

    listeners = [(engine, recorder(engine)) for engine in engines]
    for engine, listener in listeners:
        sa.event.listen(engine, "before_cursor_execute", listener)
    try:
        call()
    finally:
        for engine, listener in listeners:
            sa.event.remove(engine, "before_cursor_execute", listener)
    reads: list[str] = []
    sequential: list[str] = []
    for engine, statement, parameters in recorded:
        if isinstance(parameters, list) or not statement.lstrip().upper().startswith(
            ("SELECT", "WITH", "INSERT", "UPDATE", "DELETE")
        ):
            continue
        for relation, node, index in plan_nodes(engine, statement, parameters):
            if relation not in HISTORY_TABLES:
                continue
            how = f"{relation} written" if node == "ModifyTable" else f"{relation} by {index or node}"
            if how not in reads:
                reads.append(how)
            if node == "Seq Scan":
                sequential.append(relation)
    facts = f"{len(recorded)} statements; " + (", ".join(reads) or "no large table read")
    return facts + (
        f"; SEQUENTIAL SCAN of {', '.join(sorted(set(sequential)))}" if sequential else "; no Seq Scan"
    )


def plan_nodes(engine: sa.Engine, statement: str, parameters: Any) -> Iterator[tuple[str, str, str | None]]:
    raw = engine.raw_connection()
    try:
        with raw.driver_connection.cursor() as cursor:
            cursor.execute("EXPLAIN (FORMAT JSON) " + statement, parameters)
            [(document,)] = cursor.fetchall()
        raw.driver_connection.rollback()
    finally:
        raw.close()

    def walk(node: dict[str, Any]) -> Iterator[tuple[str, str, str | None]]:
        if "Relation Name" in node:
            index = node.get("Index Name")
            if node["Node Type"] == "Bitmap Heap Scan":  # its bitmap's indexes are its children's
                index = " + ".join(dict.fromkeys(child["Index Name"] for child in bitmap_scans(node)))
            yield node["Relation Name"], node["Node Type"], index
        for child in node.get("Plans", []):
            yield from walk(child)

    def bitmap_scans(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
        for child in node.get("Plans", []):
            if child["Node Type"] == "Bitmap Index Scan":
                yield child
            elif child["Node Type"] in ("BitmapOr", "BitmapAnd"):
                yield from bitmap_scans(child)

    yield from walk(document[0]["Plan"])


if __name__ == "__main__":
    main()
