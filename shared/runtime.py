"""Long-running workers shared by the services: the outbox relay and consumer processes (with graceful shutdown), and the per-service operator CLI."""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import click
from prometheus_client import Counter, Gauge
from prometheus_client.registry import Collector

from shared.config import ConfigError, Process, ServiceConfig
from shared.context import ServiceContext
from shared.db import run_migrations
from shared.events.broker import (
    ALL_TOPICS,
    KafkaCluster,
    KafkaError,
    close_quietly,
    ensure_topics,
    make_consumer,
    make_producer,
)
from shared.events.consumer import AfterBatch, EventConsumer, Handler, PositionGuard, StopRequested
from shared.events.dead_letters import (
    DeadLetter,
    DeadLetterError,
    DeadLetters,
    load_dead_letters,
    redact,
    redrive,
    secret_values,
)
from shared.events.relay import OutboxRelay
from shared.events.replay import replay_outbox
from shared.logging import configure_logging
from shared.probes import Heartbeat, OutboxCollector, ProbeServer, infrastructure_checks, process_registry
from shared.tracing import configure_tracing

log = logging.getLogger(__name__)

ConfigT = TypeVar("ConfigT", bound=ServiceConfig)


# A worker, relay or consumer exits within this long of SIGTERM, whatever the broker or the
# database does (Kubernetes' grace period is 30 s). Every wait is bounded well below it; should
# one still overrun, the process leaves anyway, with SHUTDOWN_OVERRUN_EXIT_CODE.
SHUTDOWN_GRACE_SECONDS = 8.0
SHUTDOWN_OVERRUN_EXIT_CODE = 75


def stop_on_signals(grace_seconds: float = SHUTDOWN_GRACE_SECONDS) -> threading.Event:
    """An event set by SIGINT/SIGTERM, so workers finish the message in hand and exit cleanly.

    Work left undone is safe by design (the outbox keeps unpublished events, the inbox makes a
    redelivered message a no-op), so a shutdown that overruns ``grace_seconds`` ends the process.
    """
    stop = threading.Event()

    def leave_if_still_running() -> None:
        time.sleep(grace_seconds)
        log.error("shutdown overran its grace period; exiting now", extra={"grace_seconds": grace_seconds})
        logging.shutdown()
        os._exit(SHUTDOWN_OVERRUN_EXIT_CODE)

    def handle(signum: int, _frame: Any) -> None:
        log.info("shutting down", extra={"signal": signal.Signals(signum).name})
        if not stop.is_set():
            stop.set()
            threading.Thread(target=leave_if_still_running, name="shutdown-deadline", daemon=True).start()

    signal.signal(signal.SIGINT, handle)
    signal.signal(signal.SIGTERM, handle)
    return stop


DUTY_LAST_SUCCESS = Gauge(
    "hirfa_worker_duty_last_success_timestamp_seconds",
    "When each duty of the worker last ran to its end without an error (Unix time)",
    ["duty"],
)
DUTY_FAILURES = Counter(
    "hirfa_worker_duty_failures_total",
    "Passes of each duty of the worker that raised (logged, then skipped until the next pass)",
    ["duty"],
)


def duty_succeeded(duty: str) -> None:
    DUTY_LAST_SUCCESS.labels(duty).set_to_current_time()


def duty_failed(duty: str) -> None:
    DUTY_FAILURES.labels(duty).inc()


def run_duty(log: logging.Logger, done: str, job: Callable[[], int | dict[str, int] | None]) -> None:
    """One pass of a worker's duty; its counts are logged as ``done`` when anything happened.

    A duty that raises is logged and skipped: one failing (a partner is down, say) must never
    kill the worker or hold up its other duties. ``done`` also names the duty on ``/metrics``
    (its last success, its failures). A job that returns None did not run (it was not due).
    """
    try:
        result = job()
    except Exception:  # noqa: BLE001 - a worker pass must never kill the worker
        log.exception("worker duty failed", extra={"duty": done})
        duty_failed(done)
        return
    if result is None:
        return
    duty_succeeded(done)
    counts = result if isinstance(result, dict) else {"count": result}
    if any(counts.values()):
        log.info(done, extra=counts)


@contextlib.contextmanager
def serving_probes(
    context: ServiceContext,
    process: str,
    *,
    broker: bool,
    collectors: Iterable[Collector] = (),
    loops: Iterable[str] = ("main",),
    idle_seconds: float = 0.0,
) -> Iterator[Heartbeat]:
    """``/metrics``, ``/healthz`` and ``/readyz`` of a long-running ``process`` on its own port
    (``PROBE_PORT``; none when unset), for as long as the block runs. The block's work ``loops``
    beat the heartbeat it is given; one silent longer than ``PROBE_STALL_SECONDS`` plus
    ``idle_seconds`` (the wait between a worker's passes) fails ``/healthz``. ``broker``: the
    process needs the broker to be ready, as well as its database.

    The server stops when the block ends (SIGTERM: the loops return, then this), in well under a
    second; its thread would not keep the process alive anyway.
    """
    config = context.config
    heartbeat = Heartbeat(config.probe_stall_seconds + idle_seconds, loops)
    if config.probe_port is None:
        yield heartbeat
        return
    server = ProbeServer(
        config.probe_host,
        config.probe_port,
        registry=process_registry([heartbeat, *collectors]),
        heartbeat=heartbeat,
        ready_checks=infrastructure_checks(context, broker=broker),
        process=process,
    )
    try:
        server.start()
    except OSError as exc:
        # Two processes given one port: say which setting, as any other bad setting does.
        raise ConfigError(
            f"{config.setting_name('probe_port')}: cannot listen on {config.probe_host}:{config.probe_port} "
            f"({exc.strerror or exc})"
        ) from None
    log.info("probes listening", extra={"component": process, "url": server.url})
    try:
        yield heartbeat
    finally:
        server.stop()


def make_relay(context: ServiceContext) -> OutboxRelay:
    config = context.config
    return OutboxRelay(
        session_factory=context.session_factory,
        outbox_model=context.models.outbox,
        kafka=KafkaCluster.from_config(config),
        topics=[config.topic, config.dead_letter_topic],
        batch_size=config.relay_batch_size,
        poll_interval=config.relay_poll_interval_seconds,
        max_backoff=config.relay_max_backoff_seconds,
        send_timeout=config.http_timeout_seconds,
        topic_model=context.models.broker_topic if config.relay_loss_check_seconds > 0 else None,
        watched_topics=[config.topic],
        loss_check_interval=config.relay_loss_check_seconds,
    )


def make_event_consumer(
    context: ServiceContext,
    handlers: dict[str, Handler],
    topics: list[str],
    after_batch: AfterBatch | None = None,
    stop: threading.Event | None = None,
) -> EventConsumer:
    config = context.config
    # Built now, so a missing certificate file stops the process at start, naming the setting.
    kafka = KafkaCluster.from_config(config)

    def consumer_factory() -> Any:
        ensure_topics(kafka, [*topics, config.dead_letter_topic])
        if stop is not None and stop.is_set():
            raise StopRequested  # two bounded broker waits in a row would add up
        return make_consumer(
            kafka,
            config.consumer_group,
            topics,
            session_timeout_ms=config.consumer_session_timeout_ms,
            max_poll_records=config.consumer_batch_size,
        )

    return EventConsumer(
        name=config.consumer_group,
        handlers=handlers,
        uow_factory=context.uow_factory,
        inbox_model=context.models.inbox,
        consumer_factory=consumer_factory,
        producer_factory=lambda: make_producer(kafka, config.http_timeout_seconds),
        dead_letter_topic=config.dead_letter_topic,
        max_attempts=config.consumer_max_attempts,
        batch_size=config.consumer_batch_size,
        fault_injection="" if config.is_production else config.fault_injection,
        after_batch=after_batch,
        position_guard=(
            PositionGuard(
                reader=config.consumer_group,
                session_factory=context.session_factory,
                topic_model=context.models.broker_topic,
                interval_seconds=config.consumer_loss_check_seconds,
            )
            if config.consumer_loss_check_seconds > 0
            else None
        ),
    )


def _parse_time(value: str) -> dt.datetime:
    parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def service_cli(
    name: str,
    *,
    service_dir: Path,
    load_config: Callable[..., ConfigT],
    bootstrap: Callable[[ConfigT], ServiceContext],
    handlers: Callable[[ConfigT], dict[str, Handler]] | None = None,
    subscribes_to: list[str] | None = None,
    after_batch: Callable[[dict[str, Handler]], AfterBatch] | None = None,
) -> click.Group:
    """The operator commands every service has: db upgrade, relay, consume, events replay.

    ``load_config(process=…)`` reads the settings for the process a command starts (each checks
    only the secrets that process uses); ``handlers(config)`` are the consumer's."""

    @click.group(name=name, help=f"Operate the {name} service.")
    def group() -> None:
        pass

    @group.group("db", help="Database schema.")
    def db() -> None:
        pass

    @db.command("upgrade", help="Apply migrations up to the latest revision.")
    def upgrade() -> None:
        config = load_config(process=Process.MIGRATE)
        configure_logging(name, config.log_level, config.log_json)
        run_migrations(service_dir, config.database_url)
        click.echo(f"{name}: database is at the latest revision")

    @db.command("revision", help="Generate a migration from the models (developers).")
    @click.option("-m", "--message", required=True)
    def revision(message: str) -> None:
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(service_dir / "migrations"))
        config.set_main_option("sqlalchemy.url", load_config(process=Process.MIGRATE).database_url)
        command.revision(config, message=message, autogenerate=True)

    @group.command("relay", help="Publish the outbox to Kafka until stopped.")
    def relay() -> None:
        config = load_config(process=Process.RELAY)
        configure_logging(f"{name}-relay", config.log_level, config.log_json)
        configure_tracing(f"{name}-relay", config)
        context = bootstrap(config)
        stop = stop_on_signals()
        with serving_probes(
            context, f"{name}-relay", broker=True, collectors=[OutboxCollector(context)]
        ) as heartbeat:
            make_relay(context).run(stop, heartbeat=heartbeat.beat)

    if handlers is not None:

        @group.command("consume", help="Apply events from other services until stopped.")
        def consume() -> None:
            config = load_config(process=Process.CONSUMER)
            configure_logging(f"{name}-consumer", config.log_level, config.log_json)
            configure_tracing(f"{name}-consumer", config)
            context = bootstrap(config)
            handler_map = handlers(config)
            stop = stop_on_signals()
            consumer = make_event_consumer(
                context,
                handler_map,
                subscribes_to or list(ALL_TOPICS),
                after_batch(handler_map) if after_batch else None,
                stop=stop,
            )
            with serving_probes(context, f"{name}-consumer", broker=True) as heartbeat:
                # What start-up built (modules, the app, the engine) lives as long as the process:
                # kept out of the collector's full passes, which then only walk what the batches
                # allocate.
                gc.freeze()
                consumer.run(stop, heartbeat=heartbeat.beat)

    @group.group("events", help="Event operations.")
    def events() -> None:
        pass

    @events.command("replay", help="Republish outbox events created in [--since, --until).")
    @click.option("--since", required=True, help="ISO 8601 start time (inclusive).")
    @click.option("--until", default=None, help="ISO 8601 end time (exclusive); default now.")
    @click.option("--type", "event_type", default=None, help="Only this event type.")
    def replay(since: str, until: str | None, event_type: str | None) -> None:
        config = load_config(process=Process.RELAY)
        configure_logging(name, config.log_level, False)
        context = bootstrap(config)
        producer = make_producer(KafkaCluster.from_config(config))
        try:
            count = replay_outbox(
                session_factory=context.session_factory,
                outbox_model=context.models.outbox,
                producer=producer,
                since=_parse_time(since),
                until=_parse_time(until) if until else dt.datetime.now(dt.UTC),
                event_type=event_type,
            )
        finally:
            producer.close(timeout=5)
        click.echo(f"{name}: republished {count} event(s)")

    _dead_letter_commands(group, name, load_config)
    return group


# One line per dead letter in `dead-letters list`.
_DEAD_LETTER_ROW = "{ref:<9} {at:<20} {status:<9} {topic:<18} {event:<31} {error}"
_ERROR_WIDTH = 80


def _dead_letter_commands(group: click.Group, name: str, load_config: Callable[..., ConfigT]) -> None:
    """``<service> dead-letters list|show|redrive``."""

    @group.group(
        "dead-letters",
        help=f"Messages the {name} consumer could not apply ({name}.dead-letter), and their redrive.",
    )
    def dead_letters() -> None:
        pass

    def load() -> tuple[ConfigT, DeadLetters]:
        config = load_config(process=Process.CONSUMER)
        configure_logging(name, config.log_level, False)
        try:
            found = load_dead_letters(
                KafkaCluster.from_config(config), config.dead_letter_topic, config.http_timeout_seconds * 2
            )
        except (DeadLetterError, ConfigError, KafkaError) as exc:
            raise click.ClickException(str(exc)) from None
        return config, found

    @dead_letters.command("list", help="The most recent dead letters, oldest first.")
    @click.option("--limit", default=20, show_default=True, type=click.IntRange(min=1), help="How many.")
    def list_dead_letters(limit: int) -> None:
        config, found = load()
        secrets = secret_values(config)
        letters = sorted(
            found.letters, key=lambda letter: (letter.dead_lettered_at, letter.partition, letter.offset)
        )
        shown = letters[-limit:]
        pending = sum(1 for letter in found.letters if not found.is_redriven(letter))
        click.echo(f"{len(shown)} of {len(letters)} dead letter(s) on {found.topic}, {pending} not redriven")
        if not shown:
            return
        click.echo(
            _DEAD_LETTER_ROW.format(
                ref="REF", at="DEAD-LETTERED", status="STATUS", topic="FROM", event="EVENT", error="ERROR"
            )
        )
        for letter in shown:
            error = redact(letter.error, secrets)
            click.echo(
                _DEAD_LETTER_ROW.format(
                    ref=letter.ref,
                    at=letter.dead_lettered_at.strftime("%Y-%m-%d %H:%M:%S"),
                    status="redriven" if found.is_redriven(letter) else "pending",
                    topic=letter.original_topic or "-",
                    event=letter.event_id or "-",
                    error=error if len(error) <= _ERROR_WIDTH else f"{error[: _ERROR_WIDTH - 1]}…",
                )
            )

    @dead_letters.command(
        "show", help="One dead letter in full: REF (partition:offset), an offset, or an event id."
    )
    @click.argument("identifier")
    def show(identifier: str) -> None:
        config, found = load()
        try:
            letters = found.find(identifier)
        except DeadLetterError as exc:
            raise click.ClickException(str(exc)) from None
        secrets = secret_values(config)
        for letter in letters:
            click.echo(redact(_describe(found, letter), secrets))

    @dead_letters.command(
        "redrive",
        help="Republish dead letters to their original topics, once each, for the consumer to apply "
        "after a fix. IDENTIFIERS: refs (partition:offset), offsets or event ids.",
    )
    @click.argument("identifiers", nargs=-1)
    @click.option("--all", "redrive_all", is_flag=True, help="Every dead letter not redriven yet.")
    def redrive_command(identifiers: tuple[str, ...], redrive_all: bool) -> None:
        if redrive_all == bool(identifiers):
            raise click.UsageError("name the dead letters to redrive, or pass --all (not both)")
        config, found = load()
        try:
            chosen = (
                found.letters if redrive_all else [letter for i in identifiers for letter in found.find(i)]
            )
        except DeadLetterError as exc:
            raise click.ClickException(str(exc)) from None

        def with_progress_bar(letters: Iterable[DeadLetter]) -> Iterator[DeadLetter]:
            with click.progressbar(list(letters), label="Redriving", show_pos=True) as bar:
                yield from bar

        try:
            producer = make_producer(KafkaCluster.from_config(config), config.http_timeout_seconds)
        except (ConfigError, KafkaError) as exc:
            # As reading them: a broker out of reach is said in one line, not a traceback.
            raise click.ClickException(f"redrive could not start: {type(exc).__name__}: {exc}") from None
        try:
            result = redrive(producer, found, chosen, config.http_timeout_seconds, progress=with_progress_bar)
        except KafkaError as exc:
            raise click.ClickException(f"redrive stopped: {type(exc).__name__}") from None
        finally:
            close_quietly(producer)
        click.echo(
            f"{name}: redrove {result.redriven} dead letter(s); {result.already_redriven} already redriven"
        )
        if result.unroutable:
            click.echo(
                "not redriven (no original topic): {refs}".format(refs=", ".join(result.unroutable)), err=True
            )


def _describe(found: DeadLetters, letter: DeadLetter) -> str:
    try:
        payload = json.dumps(json.loads(letter.value), indent=2, ensure_ascii=False)
    except (UnicodeDecodeError, json.JSONDecodeError):
        payload = letter.value.decode(errors="replace")
    lines = [
        ("dead letter", f"{found.topic} {letter.ref}"),
        ("dead-lettered at", letter.dead_lettered_at.isoformat(timespec="seconds")),
        ("status", "redriven" if found.is_redriven(letter) else "pending"),
        ("consumer", letter.consumer or "-"),
        ("error", letter.error or "-"),
        (
            "from",
            f"{letter.original_topic} partition {letter.original_partition} offset {letter.original_offset}"
            if letter.original_topic
            else "-",
        ),
        ("key", letter.key.decode(errors="replace") if letter.key else "-"),
        ("event", f"{letter.event_id or '-'} ({letter.event_type or 'unknown type'})"),
    ]
    width = max(len(label) for label, _ in lines) + 1
    body = "\n".join(f"{label + ':':<{width}} {value}" for label, value in lines)
    return f"{body}\npayload:\n{payload}\n"
