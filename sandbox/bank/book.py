"""The sandbox bank's in-memory book of requests (account openings, transfers), as a bank keeps
them: idempotent on the caller's reference, decided after a delay, announced by signed callback.

Everything is done under one lock; callers get copies. A resource module says how to make an item
(``new_item``), how to decide it (``decide``) and what its callback says (``item.callback_data()``).
"""

from __future__ import annotations

import abc
import dataclasses
import secrets
import threading
import time
from typing import Any, Generic, TypeVar

from sandbox.bank.config import SandboxBankConfig
from sandbox.common.callbacks import CallbackSender, new_event
from sandbox.common.errors import ApiError

Item = TypeVar("Item")


class RequestBook(abc.ABC, Generic[Item]):
    id_prefix = ""  # e.g. "aop"
    event_prefix = ""  # e.g. "account_opening": callbacks are "<event_prefix>.<status>"
    noun = ""  # e.g. "opening", for error messages

    def __init__(self, config: SandboxBankConfig, callbacks: CallbackSender) -> None:
        self._config = config
        self._callbacks = callbacks
        self._lock = threading.Lock()
        self._by_id: dict[str, Item] = {}
        self._id_by_reference: dict[str, str] = {}

    @abc.abstractmethod
    def new_item(self, item_id: str, request: Any, created: int) -> Item:
        """The resource's item for a new request (not stored yet)."""

    @abc.abstractmethod
    def decide(self, item: Item) -> None:
        """Settle a pending item in place (under the lock): set its final status and details."""

    def create(self, request: Any) -> tuple[Item, bool]:
        """Record a new item and schedule its decision; a known reference returns its item.

        The second value says whether the item is new. The same reference with other details is a
        409, as a bank refuses to reuse a payment reference.
        """
        with self._lock:
            known_id = self._id_by_reference.get(request.reference)
            if known_id is not None:
                known = self._by_id[known_id]
                if known.request != request:
                    raise ApiError(
                        409,
                        "reference_conflict",
                        f"This reference was already used for {self.noun_with_article} with different details.",
                        param="reference",
                    )
                return dataclasses.replace(known), False
            item = self.new_item(f"{self.id_prefix}_{secrets.token_hex(12)}", request, int(time.time()))
            self._by_id[item.id] = item
            self._id_by_reference[request.reference] = item.id
            snapshot = dataclasses.replace(item)
        self._callbacks.schedule(
            self._config.callback_delay_seconds, lambda: self.decide_and_notify(snapshot.id)
        )
        return snapshot, True

    @property
    def noun_with_article(self) -> str:
        return ("an " if self.noun[:1] in "aeiou" else "a ") + self.noun

    def get(self, item_id: str) -> Item | None:
        with self._lock:
            item = self._by_id.get(item_id)
            return None if item is None else dataclasses.replace(item)

    def decide_and_notify(self, item_id: str) -> None:
        with self._lock:
            item = self._by_id[item_id]
            if item.status != "pending":
                return
            self.decide(item)
            decided = dataclasses.replace(item)
        event = new_event(f"{self.event_prefix}.{decided.status}", decided.callback_data())
        self._callbacks.deliver(decided.request.callback_url, event)
