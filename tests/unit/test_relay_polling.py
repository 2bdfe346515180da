"""How long the outbox relay waits between batches: not at all after a full batch, briefly after a
batch that published something (more events are arriving), the poll interval when it found nothing
(no broker, no database: the batches are scripted)."""

from __future__ import annotations

import threading

from shared.events.relay import BatchResult, OutboxRelay


class ScriptedStop(threading.Event):
    """The relay's stop event: records each wait, and stops the relay once the script is played."""

    def __init__(self) -> None:
        super().__init__()
        self.waits: list[float] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(timeout or 0.0)
        return self.is_set()


def relay_waits(results: list[BatchResult], **settings: float) -> list[float]:
    relay = OutboxRelay(
        session_factory=None,  # type: ignore[arg-type]
        outbox_model=None,
        kafka="127.0.0.1:9",
        topics=["payments.events"],
        batch_size=100,
        broker_look=object(),
        **settings,  # type: ignore[arg-type]
    )
    stop = ScriptedStop()
    script = iter(results)

    def publish_batch() -> BatchResult:
        result = next(script, None)
        if result is None:
            stop.set()
            return BatchResult()
        return result

    relay.publish_batch = publish_batch  # type: ignore[method-assign]
    relay.run(stop)
    return stop.waits[:-1]  # the last: after the script, as it stopped


def test_a_relay_that_is_publishing_looks_again_soon_and_an_idle_one_every_poll_interval() -> None:
    waits = relay_waits(
        [
            BatchResult(published=3),
            BatchResult(published=0),
            BatchResult(published=100),
            BatchResult(published=7),
        ],
        poll_interval=0.2,
    )

    # The full batch is followed by no wait at all: the next batch is probably waiting already.
    assert waits == [0.02, 0.2, 0.02]


def test_a_relay_told_to_poll_more_often_than_its_busy_interval_keeps_its_interval() -> None:
    assert relay_waits([BatchResult(published=3)], poll_interval=0.01) == [0.01]


def test_a_failed_batch_backs_off_whatever_it_published() -> None:
    waits = relay_waits([BatchResult(published=3, failed=2, error="broker gone")], poll_interval=0.2)

    assert waits[0] >= 0.25  # the first backoff: between a quarter and half a second
