"""`hirfa <service> dead-letters list|show|redrive` against the embedded broker: a message the
consumer cannot apply is dead-lettered, shown without secrets, and once the fix is in, redriven and
applied once; a second redrive changes nothing."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from services.payments.adapters.orm import Payee
from services.payments.service_layer.projections import HANDLERS as PAYMENTS_HANDLERS
from shared.events.broker import KafkaCluster
from shared.events.dead_letters import load_dead_letters, read_topic
from shared.runtime import make_event_consumer, make_relay
from tests.integration.test_event_flow import Workers, count, register, values, with_broker
from tests.support import ROOT, Broker, wait_until

# A payments secret the failing handler's error happens to carry, and a phone number.
GATEWAY_KEY = "m2t-live-key-9f3e1d7c"
PHONE = "0612345678"
REGISTERED = "onboarding.artisan.registered"


@pytest.fixture
def fresh_broker(tmp_path):
    broker = Broker(tmp_path / "broker.log")
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def workers():
    workers = Workers()
    yield workers
    workers.close_all()


def hirfa(broker: Broker, tmp_path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "ENVIRONMENT": "development",
        "PAYMENTS_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
        "PAYMENTS_VAR_DIR": str(tmp_path),
        "PAYMENTS_M2T_API_KEY": GATEWAY_KEY,
    }
    return subprocess.run(
        [sys.executable, "-m", "services.cli", "payments", "dead-letters", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_dead_letter_is_listed_shown_and_redriven_once_after_the_fix(
    fresh_broker, tmp_path, onboarding, onboarding_app, payments_app, marketplace_headers, workers
):
    onboarding_ctx = with_broker(onboarding_app, fresh_broker.bootstrap)
    payments_ctx = with_broker(payments_app, fresh_broker.bootstrap, consumer_max_attempts=2)
    cluster = KafkaCluster.plaintext(fresh_broker.bootstrap)
    artisan_id = register(onboarding, marketplace_headers)
    assert make_relay(onboarding_ctx).publish_batch().published == 1

    # A bug: the payments projection fails on every registration.
    def broken(uow, event):
        raise RuntimeError(f"payee refused: gateway key {GATEWAY_KEY}, contact {PHONE}")

    broken_consumer = workers(
        make_event_consumer(payments_ctx, {REGISTERED: broken}, ["onboarding.events"]).run
    )
    wait_until(
        lambda: len(load_dead_letters(cluster, "payments.dead-letter").letters) == 1,
        timeout=45,
        message="the registration dead-lettered",
    )
    broken_consumer.close()
    [letter] = load_dead_letters(cluster, "payments.dead-letter").letters
    event_id = letter.event_id
    assert event_id and letter.key == artisan_id.encode()

    listed = hirfa(fresh_broker, tmp_path, "list")
    assert listed.returncode == 0, listed.stderr
    assert "1 of 1 dead letter(s) on payments.dead-letter, 1 not redriven" in listed.stdout
    assert letter.ref in listed.stdout and event_id in listed.stdout and "pending" in listed.stdout
    assert "onboarding.events" in listed.stdout and "RuntimeError: payee refused" in listed.stdout

    for identifier in (event_id, letter.ref):
        shown = hirfa(fresh_broker, tmp_path, "show", identifier)
        assert shown.returncode == 0, shown.stderr
        assert f"({REGISTERED})" in shown.stdout and artisan_id in shown.stdout
        assert "RuntimeError: payee refused: gateway key [secret]" in shown.stdout
    for output in (listed.stdout, shown.stdout):
        assert GATEWAY_KEY not in output and PHONE not in output

    missing = hirfa(fresh_broker, tmp_path, "show", "evt_01M83C1NV0ZQDY5JVSH4E6Y0MW")
    assert missing.returncode == 1 and "no dead letter evt_01M83C1NV0ZQDY5JVSH4E6Y0MW" in missing.stderr
    assert hirfa(fresh_broker, tmp_path, "redrive").returncode == 2  # neither ids nor --all

    # The fix is deployed: the consumer runs the real projection. The poison message's offset was
    # committed, so nothing happens until the redrive.
    workers(make_event_consumer(payments_ctx, PAYMENTS_HANDLERS, ["onboarding.events"]).run)
    time.sleep(2)
    assert count(payments_ctx, Payee) == 0

    redriven = hirfa(fresh_broker, tmp_path, "redrive", "--all")
    assert redriven.returncode == 0, redriven.stderr
    assert "payments: redrove 1 dead letter(s); 0 already redriven" in redriven.stdout
    wait_until(lambda: count(payments_ctx, Payee) == 1, timeout=30, message="the redriven event applied")
    assert values(payments_ctx, Payee.artisan_id) == {artisan_id}
    republished = read_topic(cluster, "onboarding.events")
    assert [record.key for record in republished] == [artisan_id.encode()] * 2  # keyed as before
    assert dict(republished[-1].headers)["event_id"] == event_id.encode()

    # A second redrive, of everything or of that letter, republishes nothing.
    for args in (["--all"], [event_id]):
        again = hirfa(fresh_broker, tmp_path, "redrive", *args)
        assert again.returncode == 0, again.stderr
        assert "payments: redrove 0 dead letter(s); 1 already redriven" in again.stdout
    assert len(read_topic(cluster, "onboarding.events")) == 2
    relisted = hirfa(fresh_broker, tmp_path, "list")
    assert "0 not redriven" in relisted.stdout and "redriven" in relisted.stdout
    time.sleep(1)
    assert count(payments_ctx, Payee) == 1
