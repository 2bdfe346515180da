"""``make bench``: throughput of the hot paths of the spine, printed as a small table, then ledger
postings per second through the accounts consumer beside the raw-SQL transfer ceiling of 8
concurrent clients on the same database, as a ratio (``tests/bench_ledger.py``).

Not a test (nothing here asserts a time); run it before and after a change to compare. The ledger
part uses PostgreSQL when one answers at ``TEST_DATABASE_URL`` (as the tests do: a throwaway
database, dropped afterwards), SQLite in a temporary directory otherwise. It also prints the SQL
statements per posting (tests/integration/test_ledger_statements.py keeps the consumer's from
growing). Then reconciliation (tests/bench_reconciliation.py) and the cost of calls on databases
holding a long history (tests/bench_history.py; ``HISTORY_BENCH_ENTRIES`` and
``HISTORY_BENCH_PAYMENTS`` shrink it).

The lag part (tests/bench_lag.py, PostgreSQL only) runs the embedded broker, payments' relay and
accounts' consumer as processes, measures the maximum posting rate with a burst, then feeds
``payments.payment.succeeded`` events at half of it and prints the lag from payments' outbox commit
to the artisan's balance, p50 and p99 (goal: p99 under a second). ``LAG_BENCH_SECONDS`` (25) sets
the steady feed's length and ``LAG_BENCH_BURST`` (10,000) the burst's size: ``LAG_BENCH_SECONDS=8
make bench`` for a quicker, rougher p99.
"""

from __future__ import annotations

import tempfile
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

from shared.auth.keys import SigningKeyStore
from shared.auth.scopes import ROLE_SCOPES, Role
from shared.auth.tokens import TokenIssuer, TokenVerifier
from shared.events import make_event
from shared.ids import new_id
from shared.logging import mask_sensitive


def per_second(label: str, func: Callable[[], Any], number: int) -> None:
    # The best of five runs: the machine's other work only ever slows a run down.
    seconds = min(timeit.repeat(func, number=number, repeat=5))
    print(f"{label:<40} {number / seconds:>12,.0f} /s")


def main() -> None:
    with tempfile.TemporaryDirectory() as directory:
        keys = SigningKeyStore(Path(directory))
        keys.generate()
        issuer = TokenIssuer(keys, "https://auth.hirfa.ma")

        def marketplace_token() -> str:
            return issuer.issue(
                client_id="cli_bench",
                role=Role.MARKETPLACE,
                scopes=ROLE_SCOPES[Role.MARKETPLACE],
                audiences=["hirfa-payments"],
            )[0]

        token = marketplace_token()
        public = keys.public_keys()
        verifier = TokenVerifier(public.get, "https://auth.hirfa.ma", "hirfa-payments")
        print(f"{'operation':<40} {'throughput':>14}")
        # What a request pays: a client sends the same token for its fifteen minutes, and the
        # verifier remembers the tokens it verified. A token's first use checks the signature.
        per_second("token verification (EdDSA)", lambda: verifier.verify(token), 5000)
        fresh = iter([marketplace_token() for _ in range(5 * 1000)])
        per_second("token verification, first use", lambda: verifier.verify(next(fresh)), 1000)
        per_second("prefixed id generation", lambda: new_id("pay"), 100000)
        artisan_id = new_id("art")
        data = {
            "artisan_id": artisan_id,
            "marketplace_id": "cli_bench",
            "kyc_tier": 0,
            "tier_cap": {"amount": 0, "currency": "MAD"},
            "region": "souss_massa",
            "craft": "carpets",
            "registered_at": "2026-11-23T10:00:00+00:00",
        }
        per_second(
            "event build + schema check",
            lambda: make_event("onboarding.artisan.registered", subject=artisan_id, data=data),
            5000,
        )
        line = '{"message": "payment by 0612345678 card 4111111111111111 cin AB123456"}'
        per_second("log line masking", lambda: mask_sensitive(line), 20000)
    print()
    # Ledger postings through the consumer beside the 8-client raw-SQL ceiling (tests/bench_ledger.py).
    from tests import bench_ledger

    bench_ledger.main()
    print()
    # The lag from payments' outbox to the artisan's balance through the real processes, at half
    # the maximum rate (tests/bench_lag.py).
    from tests import bench_lag

    bench_lag.main()
    # Reconciliation of a generated settlement file, beside pandas (tests/bench_reconciliation.py).
    from tests import bench_reconciliation

    bench_reconciliation.main()
    # Whether calls cost more on databases with a long history (tests/bench_history.py).
    from tests import bench_history

    bench_history.main()
    print()
    # The payments API under gunicorn beside a bare Flask + SQLAlchemy endpoint (tests/bench_payments.py).
    from tests import bench_payments

    bench_payments.main()


if __name__ == "__main__":
    main()
