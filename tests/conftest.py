"""Fixtures shared by the three test rings. See tests/README.md for the layout."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import sessionmaker

from services.accounts.adapters.immutability import LEDGER
from services.accounts.adapters.orm import Base as AccountsBase
from services.accounts.service_layer.statements import check_integrity
from services.onboarding.adapters.immutability import AUDIT_LOG
from services.onboarding.adapters.orm import Base as OnboardingBase
from services.payments.adapters.immutability import ATTEMPTS
from services.payments.adapters.orm import Base as PaymentsBase
from shared.auth.keys import SigningKeyStore
from shared.auth.scopes import ROLE_SCOPES, Role
from shared.auth.tokens import TokenIssuer
from shared.config import PROJECT_ROOT
from shared.db import UnitOfWork, make_engine, run_migrations
from tests.support import SERVICES, Broker, Databases
from tests.tokens_forge import BANK_CODE

ISSUER = "https://auth.hirfa.ma"
METADATA = {
    "onboarding": OnboardingBase.metadata,
    "payments": PaymentsBase.metadata,
    "accounts": AccountsBase.metadata,
}
# Tables whose database triggers refuse DELETE (lifted while a test empties a SQLite database).
APPEND_ONLY = {"accounts": LEDGER, "payments": ATTEMPTS, "onboarding": AUDIT_LOG}

_databases: Databases | None = None


def pytest_configure(config):
    global _databases
    _databases = Databases(Path(tempfile.mkdtemp(prefix="hirfa-test-db-")))


def pytest_report_header(config):
    where = _databases.admin_url.rsplit("@", 1)[-1] if _databases.admin_url else "temporary files"
    return f"hirfa test databases: {_databases.backend} ({where})"


def pytest_terminal_summary(terminalreporter):
    if _databases is not None:
        terminalreporter.write_line(f"hirfa tests ran on {_databases.backend}")


def pytest_sessionfinish(session, exitstatus):
    if _databases is not None:
        _databases.drop_all()


@pytest.fixture(scope="session")
def databases() -> Databases:
    assert _databases is not None
    return _databases


@pytest.fixture(scope="session")
def database_urls(databases) -> dict[str, str]:
    """One migrated database per service, shared by the integration tests of a run."""
    urls = {}
    for service in SERVICES:
        urls[service] = databases.create(service)
        run_migrations(PROJECT_ROOT / "services" / service, urls[service])
    return urls


def empty_database(service: str, url: str) -> None:
    """Delete every row of ``service``'s tables (also between the examples of a property test)."""
    engine = make_engine(url, poolclass=sa.pool.NullPool)
    tables = list(reversed(METADATA[service].sorted_tables))
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # The append-only triggers would refuse the DELETE: the test superuser
            # switches triggers off for this cleaning transaction only.
            connection.exec_driver_sql("SET LOCAL session_replication_role = replica")
            for table in tables:
                connection.execute(table.delete())
        else:
            # SQLite fires row triggers even for a table-wide DELETE: lift the guard meanwhile.
            append_only = APPEND_ONLY.get(service)
            for statement in append_only.drop_statements("sqlite") if append_only else []:
                connection.exec_driver_sql(statement)
            for table in tables:
                connection.execute(table.delete())
            for statement in append_only.create_statements("sqlite") if append_only else []:
                connection.exec_driver_sql(statement)
    engine.dispose()


@pytest.fixture(scope="session")
def accounts_uow_factory(database_urls):
    engine = make_engine(database_urls["accounts"], poolclass=sa.pool.NullPool)
    yield lambda: UnitOfWork(sessionmaker(engine, expire_on_commit=False))
    engine.dispose()


@pytest.fixture
def clean_databases(request, database_urls, accounts_uow_factory):
    """Empty every table before the test, so each starts from a known state; afterwards, the ledger
    the test leaves must pass the integrity check (``GET /v1/ledger/integrity``), unless the test is
    marked ``corrupts_ledger`` (it breaks the ledger on purpose, to show the check catches it)."""
    for service, url in database_urls.items():
        empty_database(service, url)
    yield database_urls
    if request.node.get_closest_marker("corrupts_ledger") is None:
        report = check_integrity(accounts_uow_factory())
        assert report["differences"] == [], f"the test left the ledger unsound: {report['differences']}"


@pytest.fixture(scope="session")
def signing_keys(tmp_path_factory) -> SigningKeyStore:
    store = SigningKeyStore(tmp_path_factory.mktemp("keys"))
    store.generate()
    return store


@pytest.fixture(scope="session")
def issue_token(signing_keys):
    """issue_token(role, client_id=…, scopes=…, bank_code=…) -> bearer token signed by the test
    issuer. A bank partner's is bound to ``bank_code`` (default: the demo bank, 145)."""
    issuer = TokenIssuer(signing_keys, ISSUER, ttl_seconds=600)

    def issue(
        role: Role = Role.MARKETPLACE,
        client_id: str = "cli_test_marketplace",
        scopes=None,
        audiences=("hirfa-onboarding", "hirfa-payments", "hirfa-accounts"),
        bank_code: str | None = None,
    ) -> str:
        if role == Role.BANK_PARTNER and bank_code is None:
            bank_code = BANK_CODE
        token, _ = issuer.issue(
            client_id=client_id,
            role=role,
            scopes=ROLE_SCOPES[role] if scopes is None else scopes,
            audiences=list(audiences),
            bank_code=bank_code,
        )
        return token

    return issue


@pytest.fixture(scope="session")
def broker(tmp_path_factory):
    broker = Broker(tmp_path_factory.mktemp("broker") / "broker.log")
    broker.start()
    yield broker
    broker.stop()
