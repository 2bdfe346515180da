"""The README's "Reading the ledger stream" snippet, run as written against the embedded broker:
it gets its first entry within a few seconds, checks every entry against its JSON Schema, resumes
from the group's committed position, and stops (committing nothing) at an entry that breaks the
contract."""

from __future__ import annotations

import dataclasses
import json
import re
import time

import jsonschema
import pytest

from shared.config import PROJECT_ROOT
from shared.events.broker import make_producer
from shared.runtime import make_relay
from tests.ledger_support import LedgerDriver, payment_succeeded
from tests.support import Broker

pytestmark = pytest.mark.integration

# "Within a few seconds": the join alone takes about 3 s with the README's settings (it took ~23 s
# with kafka-python's defaults); the rest is the client's start and the fetch.
FIRST_RECORD_WITHIN_SECONDS = 8.0
# Longer than the join (the idle clock starts with the iteration, before the group is joined).
IDLE_MS = 8000


def readme_snippet() -> str:
    """The Python block of the README's "Reading the ledger stream" section."""
    readme = (PROJECT_ROOT / "README.md").read_text()
    section = readme.split("### Reading the ledger stream", 1)[1].split("\n## ", 1)[0]
    [code] = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    return code


@pytest.fixture
def snippet(monkeypatch):
    """The snippet's names, executed as a module that is not ``__main__`` (from the project root,
    where its schema path points)."""
    monkeypatch.chdir(PROJECT_ROOT)
    namespace: dict = {"__name__": "readme_ledger_stream"}
    exec(compile(readme_snippet(), "README.md", "exec"), namespace)  # noqa: S102 - our own README
    return namespace


@pytest.fixture
def broker(tmp_path):
    broker = Broker(tmp_path / "broker.log")
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def ledger(accounts_app, broker) -> LedgerDriver:
    context = accounts_app.extensions["hirfa"]
    context.config = dataclasses.replace(context.config, kafka_bootstrap_servers=broker.bootstrap)
    return LedgerDriver(accounts_app)


def publish_outbox(ledger: LedgerDriver) -> None:
    relay = make_relay(ledger.context)
    while relay.publish_batch().published:
        pass


class Mirror:
    """What a bank would store: the entries, and when the first arrived."""

    def __init__(self) -> None:
        self.entries: list[dict] = []
        self.started = time.monotonic()
        self.first_after: float | None = None

    def store(self, entry: dict) -> None:
        if self.first_after is None:
            self.first_after = time.monotonic() - self.started
        self.entries.append(entry)


def follow(snippet, broker, group_id: str) -> Mirror:
    mirror = Mirror()
    snippet["follow_ledger"](broker.bootstrap, group_id, mirror.store, stop_when_idle_ms=IDLE_MS)
    return mirror


def test_the_readme_snippet_reads_checks_and_resumes(snippet, broker, ledger):
    artisan_id = ledger.artisan_at_tier(3)
    first = payment_succeeded(artisan_id, 10_000, 1_000)
    ledger.deliver(first)
    publish_outbox(ledger)

    mirror = follow(snippet, broker, "bank-145-mirror")

    assert [entry["cause_id"] for entry in mirror.entries] == [first.data["payment_id"]]
    assert mirror.first_after is not None and mirror.first_after < FIRST_RECORD_WITHIN_SECONDS, (
        mirror.first_after
    )
    [entry] = mirror.entries
    assert sum(line["amount"] for line in entry["lines"]) == 0

    # Run again with the same group: it resumes after its committed position, with the new entry only.
    second = payment_succeeded(artisan_id, 5_000, 500)
    ledger.deliver(second)
    publish_outbox(ledger)
    again = follow(snippet, broker, "bank-145-mirror")
    assert [entry["cause_id"] for entry in again.entries] == [second.data["payment_id"]]
    # A new group starts from the beginning.
    fresh = follow(snippet, broker, "another-mirror")
    assert [entry["cause_id"] for entry in fresh.entries] == [
        first.data["payment_id"],
        second.data["payment_id"],
    ]


def test_an_entry_that_breaks_its_schema_stops_the_snippet_uncommitted(snippet, broker, ledger):
    # Written straight to the topic (Hirfa's producers validate, so it cannot come from the outbox).
    envelope = {
        "id": "evt_01JD0000000000000000000000",
        "type": "accounts.ledger.entry_posted",
        "source": "accounts",
        "subject": "art_01JD0000000000000000000000",
        "time": "2026-11-03T10:00:00+00:00",
        "schema_version": 1,
        "data": {"entry_id": "je_01JD0000000000000000000000", "lines": "none"},
    }
    producer = make_producer(broker.bootstrap)
    producer.send(
        "accounts.events", key=b"art_01JD0000000000000000000000", value=json.dumps(envelope).encode()
    ).get(10)
    producer.close()

    for _ in range(2):  # not committed: the same record stops it again
        with pytest.raises(jsonschema.ValidationError):
            follow(snippet, broker, "strict-mirror")
