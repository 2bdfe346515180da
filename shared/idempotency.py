"""Idempotency keys for creating POSTs (Stripe semantics).

- Same key, same request: the first response is replayed (``Idempotent-Replayed: true``).
- Same key, different request: 409 ``idempotency_key_reuse``.
- Same key while the first request is still running: the second waits (on the database, for the
  first's claim) for the first to finish and replays it, else 409 ``idempotency_key_in_progress``
  with ``Retry-After``.
- A request that fails before producing a response (validation error, conflict, crash) saves
  nothing: its transaction rolled back, so the client may retry with the same key. On PostgreSQL
  that holds for a request whose process was killed or whose connection was lost too: the claim
  lives in a transaction left open until the answer is stored, so a retry goes ahead at once.

Two ways to keep the key. ``idempotent`` claims it in a transaction of its own, beside the view's
(on PostgreSQL held open until the answer is kept in it; on SQLite committed at once, the answer
kept in another one after): right for a view whose effect spans several transactions (a call to a
gateway between them). ``idempotent_in_transaction`` claims it and keeps the response inside the
view's own transaction, which the view's unit of work joins (``joined_to_request``): one
transaction per request, and no moment at which the effect is saved but its answer is not. Both
claim with ``IdempotencyStore.claim_in`` on PostgreSQL.

Keys are scoped per API client; for an artisan's token, per artisan and device (the token's
``device_id``), and honoured ``artisan_idempotency_key_ttl_hours`` (7 days) rather than
``idempotency_key_ttl_hours``, so a request queued on a phone offline is still applied once. On
SQLite, a claimed key whose worker died is taken over after ``LOCK_SECONDS``. The table and its store are in ``shared.idempotency_store`` (no Flask); this module
is the decorator views wear.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any, ParamSpec

import sqlalchemy as sa
from flask import Response, current_app, g, has_request_context, make_response, request

from shared.auth.flask import current_principal
from shared.db import UnitOfWork
from shared.errors import (
    IdempotencyKeyInProgress,
    IdempotencyKeyReuse,
    MissingIdempotencyKey,
    ValidationFailed,
)
from shared.idempotency_store import MAX_KEY_LENGTH, IdempotencyStore, KeyStillInProgress, key_lifetime

HEADER = "Idempotency-Key"
Params = ParamSpec("Params")
_REPLAYED_HEADERS = ("Content-Type", "Location")
# The database failing under the answer's record (connection lost, server gone, pool exhausted).
_DATABASE_FAILURES = (sa.exc.DBAPIError, sa.exc.TimeoutError)

log = logging.getLogger(__name__)


def request_fingerprint() -> str:
    body: Any = request.get_json(silent=True) if request.is_json else None
    canonical = (
        json.dumps(body, sort_keys=True, separators=(",", ":"))
        if body is not None
        else request.get_data(as_text=False).decode("latin-1")
    )
    digest = hashlib.sha256()
    for part in (request.method, request.path, canonical):
        digest.update(part.encode())
        digest.update(b"\x00")
    return digest.hexdigest()


def _replay(row: Any) -> Response:
    response = make_response(row.response_body or "", row.response_status)
    for name, value in json.loads(row.response_headers or "{}").items():
        response.headers[name] = value
    response.headers["Idempotent-Replayed"] = "true"
    return response


def _store() -> IdempotencyStore:
    context = current_app.extensions["hirfa"]
    config = context.config
    ttl = key_lifetime(
        is_artisan=current_principal().is_artisan,
        ttl=dt.timedelta(hours=config.idempotency_key_ttl_hours),
        artisan_ttl=dt.timedelta(hours=config.artisan_idempotency_key_ttl_hours),
    )
    return IdempotencyStore(context.session_factory, context.models.idempotency_key, ttl)


def _complete(store: IdempotencyStore, client_id: str, key: str, response: Response) -> None:
    store.complete(
        client_id,
        key,
        status=response.status_code,
        headers=_kept_headers(response),
        body=response.get_data(as_text=True),
    )


def requested_key() -> str:
    """The request's Idempotency-Key as the idempotency record keeps it (spaces around it dropped).

    A view that keeps the key on what it creates (a ``creation_key``) takes it from here too, so a
    retry after the record expired still finds that row whatever spaces the client sent."""
    key = request.headers.get(HEADER)
    if key is None:
        raise MissingIdempotencyKey(
            "Send an Idempotency-Key header (a UUID is ideal) so this request can be retried safely.",
            param=HEADER,
        )
    key = key.strip()
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise ValidationFailed(
            f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable characters.",
            param=HEADER,
        )
    return key


def requested_key_if_sent() -> str | None:
    """``requested_key()``, or None for a request sent without an Idempotency-Key (a view under
    ``idempotent_when_keyed``)."""
    return None if request.headers.get(HEADER) is None else requested_key()


def _key_reuse() -> IdempotencyKeyReuse:
    return IdempotencyKeyReuse(
        "This Idempotency-Key was used with a different request body or endpoint. "
        "Use a new key for a new request.",
        param=HEADER,
    )


def _kept_headers(response: Response) -> dict[str, str]:
    return {h: response.headers[h] for h in _REPLAYED_HEADERS if h in response.headers}


def _key_in_progress() -> IdempotencyKeyInProgress:
    return IdempotencyKeyInProgress(headers={"Retry-After": "1"}, param=HEADER)


def _answer_from(existing: Any, fingerprint: str) -> Response:
    """The answer to a request whose key an earlier request claimed first (``existing``, its row)."""
    if existing.fingerprint != fingerprint:
        raise _key_reuse()
    if existing.response_status is None:
        # Claimed in a transaction committed before its answer (SQLite's), and not given up yet.
        raise _key_in_progress()
    return _replay(existing)


@contextlib.contextmanager
def _answering_though_not_kept(response: Response) -> Iterator[None]:
    """Keep ``response`` for retries inside; if the database fails meanwhile, still answer it.

    The view has committed its effect by then: a 503 would tell the client nothing happened, and
    a retry with a new key would do it twice. Unkept, the claim goes with its transaction (or, on
    SQLite, is taken over after ``LOCK_SECONDS``), and a retry with the key runs the view again,
    which finds what it made (a payment's or a refund's ``creation_key``)."""
    try:
        yield
    except _DATABASE_FAILURES as error:
        log.warning(
            "could not keep the answer to an idempotent request",
            extra={"status": response.status_code, "error": type(error).__name__},
        )


def _run_holding_the_claim(
    store: IdempotencyStore,
    client_id: str,
    key: str,
    fingerprint: str,
    wait_seconds: float,
    view: Callable[..., Any],
    args: Any,
    kwargs: Any,
) -> Response:
    """PostgreSQL: the claim is held in an open transaction for as long as the request runs."""
    try:
        with store.hold(
            client_id, key, fingerprint, method=request.method, path=request.path, wait_seconds=wait_seconds
        ) as claim:
            if claim.existing is not None:
                return _answer_from(claim.existing, fingerprint)
            response = make_response(view(*args, **kwargs))
            if response.status_code < 500:
                with _answering_though_not_kept(response):
                    claim.complete(
                        status=response.status_code,
                        headers=_kept_headers(response),
                        body=response.get_data(as_text=True),
                    )
            return response
    except KeyStillInProgress:
        raise _key_in_progress() from None


def _run_with_a_committed_claim(
    store: IdempotencyStore,
    client_id: str,
    key: str,
    fingerprint: str,
    wait_seconds: float,
    view: Callable[..., Any],
    args: Any,
    kwargs: Any,
) -> Response:
    """SQLite (one writer: no transaction may stay open across the request): the claim is committed
    at once, released on failure, and taken over after ``LOCK_SECONDS`` when its worker died."""
    deadline = time.monotonic() + wait_seconds
    existing = store.claim(client_id, key, fingerprint, method=request.method, path=request.path)
    while existing is not None:
        if existing.fingerprint != fingerprint:
            raise _key_reuse()
        if existing.response_status is not None:
            return _replay(existing)
        if time.monotonic() >= deadline:
            raise _key_in_progress()
        time.sleep(0.05)
        existing = store.load(client_id, key)
        if existing is None:
            # The first request failed and released the key: this one may run.
            existing = store.claim(client_id, key, fingerprint, method=request.method, path=request.path)

    try:
        response = make_response(view(*args, **kwargs))
    except BaseException:
        store.release(client_id, key)
        raise
    if response.status_code >= 500:
        store.release(client_id, key)
    else:
        with _answering_though_not_kept(response):
            _complete(store, client_id, key, response)
    return response


def idempotent(view: Callable[Params, Any]) -> Callable[Params, Any]:
    """Make a creating POST idempotent. Place it under the auth decorator."""

    @functools.wraps(view)
    def wrapper(*args: Params.args, **kwargs: Params.kwargs) -> Any:
        key = requested_key()
        store = _store()
        client_id = current_principal().idempotency_scope
        fingerprint = request_fingerprint()
        wait_seconds = current_app.extensions["hirfa"].config.idempotency_wait_seconds
        if store.holds_claims():
            return _run_holding_the_claim(
                store, client_id, key, fingerprint, wait_seconds, view, args, kwargs
            )
        return _run_with_a_committed_claim(
            store, client_id, key, fingerprint, wait_seconds, view, args, kwargs
        )

    wrapper.idempotency_key = "required"  # type: ignore[attr-defined]  # for the OpenAPI document
    return wrapper


# Where a request whose key is kept in its own transaction holds that transaction's session.
_REQUEST_SESSION = "hirfa_idempotent_session"


def idempotent_in_transaction(view: Callable[Params, Any]) -> Callable[Params, Any]:
    """Make a creating POST idempotent in one transaction: the key's claim, the view's effect and
    the response kept for retries are committed together, or not at all. For a view whose effect
    is one transaction (no call to a partner inside it) and whose unit of work joins the request's
    (``joined_to_request``). Place it under the auth decorator.

    A request with a key another request holds waits for that request's transaction to end (at most
    ``idempotency_wait_seconds``, then 409 ``idempotency_key_in_progress``) and replays its answer;
    if that one rolled back, this one runs.
    """

    @functools.wraps(view)
    def wrapper(*args: Params.args, **kwargs: Params.kwargs) -> Any:
        key = requested_key()
        context = current_app.extensions["hirfa"]
        store = _store()
        client_id = current_principal().idempotency_scope
        fingerprint = request_fingerprint()
        with context.session_factory() as session:  # closing it rolls back what was not committed
            try:
                existing = store.claim_in(
                    session,
                    client_id,
                    key,
                    fingerprint,
                    method=request.method,
                    path=request.path,
                    wait_seconds=context.config.idempotency_wait_seconds,
                )
            except KeyStillInProgress:
                raise _key_in_progress() from None
            if existing is not None:
                return _answer_from(existing, fingerprint)
            setattr(g, _REQUEST_SESSION, session)
            try:
                response = make_response(view(*args, **kwargs))
            finally:
                delattr(g, _REQUEST_SESSION)
            if response.status_code < 500:
                store.keep_response(
                    session,
                    client_id,
                    key,
                    status=response.status_code,
                    headers=_kept_headers(response),
                    body=response.get_data(as_text=True),
                )
                session.commit()
            return response

    wrapper.idempotency_key = "required"  # type: ignore[attr-defined]  # for the OpenAPI document
    return wrapper


def joined_to_request(uow: UnitOfWork) -> UnitOfWork:
    """``uow``, joined to the transaction of the request being served if it keeps its
    idempotency key in its own transaction (``idempotent_in_transaction``)."""
    session = g.get(_REQUEST_SESSION) if has_request_context() else None
    return uow if session is None else uow.join(session)


def idempotent_when_keyed(view: Callable[Params, Any]) -> Callable[Params, Any]:
    """``idempotent`` for a POST that does not create anything (confirm, capture, cancel): a request
    with an Idempotency-Key gets the same guarantees (a retry replays the first answer), one
    without runs as it is. Place it under the auth decorator."""
    keyed = idempotent(view)

    @functools.wraps(view)
    def wrapper(*args: Params.args, **kwargs: Params.kwargs) -> Any:
        if request.headers.get(HEADER) is None:
            return view(*args, **kwargs)
        return keyed(*args, **kwargs)

    wrapper.idempotency_key = "optional"  # type: ignore[attr-defined]  # for the OpenAPI document
    return wrapper
