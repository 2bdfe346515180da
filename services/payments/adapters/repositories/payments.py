"""Loading and locking payments."""

from __future__ import annotations

import enum
import functools
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.orm.instrumentation import manager_of_class

from services.payments.adapters.orm import ON_THE_WAY_TO_THE_LEDGER, Payment
from services.payments.domain.payments import PaymentStatus
from shared.db import first_row, is_postgres


def get(session: Session, payment_id: str) -> Payment | None:
    return session.get(Payment, payment_id)


def locked(session: Session, payment_id: str) -> Payment | None:
    """The payment under a row lock held until the transaction ends, read afresh."""
    return session.scalar(
        sa.select(Payment)
        .where(Payment.id == payment_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


class KeyedPaymentMissing(RuntimeError):
    """The insert found its creation key taken, yet no payment of the marketplace holds it."""


def add_unless_created(
    session: Session, *, on_the_way_at_most: int | None = None, **values: object
) -> Payment | None:
    """Insert a new payment (``values`` by attribute), in one statement, and return it as stored
    (with the defaults the columns gave it); when its marketplace already created one with the same
    ``creation_key``, insert nothing and return that one.

    With ``on_the_way_at_most``, the same statement sums the artisan's share of the payments on
    their way to the ledger (``artisan_share_on_the_way``) and inserts only if it is at most that
    (the caller holds the payee's lock, so the sum cannot grow meanwhile): None when it is more and
    no payment holds the key. The cap check and the insert are one round trip.

    Every column is written from here (those not given take their column's default, computed here
    as the insert would), so the database reads back only whether it inserted the row: reading
    back the whole row cost more than the rest of the statement. A payment inserted here is
    returned outside ``session``, built from those values as a load would build it (without the
    ORM's constructor): loading it again would cost a round trip."""
    capped = on_the_way_at_most is not None
    stored = _stored_values(values)
    # A column with neither a value nor a default is left out: NULL all the same, and a
    # parameter fewer to bind, send and read (a new payment leaves most of them empty).
    row = {
        _COLUMN_OF[name]: value
        for name, value in stored.items()
        if value is not None or _DEFAULTS[name] is not None
    }
    statement = _insert_unless_created(
        "postgresql" if is_postgres(session) else "sqlite", frozenset(row), capped=capped
    )
    if capped:
        row["on_the_way_at_most"] = on_the_way_at_most
    if first_row(session, statement, row) is not None:
        payment = _new_payment()
        payment.__dict__.update(stored)
        return payment
    marketplace_id, creation_key = values["marketplace_id"], values.get("creation_key")
    earlier = (
        None if creation_key is None else created_with_key(session, str(marketplace_id), str(creation_key))
    )
    if earlier is not None:
        return earlier
    if capped:
        return None  # more is on its way than fits
    # The conflict was over this key, and a new statement reads what was committed before it:
    # only a payment deleted in between gets here.
    raise KeyedPaymentMissing(
        f"marketplace {marketplace_id} has a payment with creation key {creation_key!r}, "
        "yet none could be read"
    )


def _stored_values(values: dict[str, object]) -> dict[str, object]:
    """Every attribute's value as the row will hold it: the ones given (an enum as its value), and
    each other column's default."""
    stored: dict[str, object] = {}
    for name, default in _DEFAULTS.items():
        if name in values:
            value = values[name]
            stored[name] = value.value if isinstance(value, enum.Enum) else value
        else:
            stored[name] = default() if callable(default) else default
    unknown = values.keys() - stored.keys()
    if unknown:
        raise TypeError(f"not a payment's attribute: {sorted(unknown)}")
    return stored


_TABLE = Payment.__table__
# Attribute name -> column name (``metadata_json`` is stored as ``metadata``).
_COLUMN_OF = {attribute.key: attribute.columns[0].key for attribute in Payment.__mapper__.column_attrs}


def _default_of(column: sa.Column[Any]) -> object:
    """What the insert would give ``column`` when not given a value: its default, or a function of
    no arguments making it. Only Python-side defaults: a value the database would make could not
    be known without reading the row back."""
    if column.server_default is not None or (
        column.default is not None and not (column.default.is_scalar or column.default.is_callable)
    ):
        raise TypeError(f"payments.{column.key}: a default the database makes; read it back instead")
    if column.default is None:
        return None
    if column.default.is_scalar:
        return column.default.arg  # type: ignore[attr-defined]  # a ScalarElementColumnDefault
    return functools.partial(column.default.arg, None)  # type: ignore[attr-defined]  # takes a context


_DEFAULTS = {name: _default_of(_TABLE.c[column]) for name, column in _COLUMN_OF.items()}
# How a load makes an instance: no constructor, the attributes' values set as loaded.
_new_payment = manager_of_class(Payment).new_instance


@functools.lru_cache(maxsize=64)  # a creation leaves the same few columns empty, or not
def _insert_unless_created(dialect_name: str, columns: frozenset[str], *, capped: bool) -> Any:
    """The insert of ``columns``, built once per dialect (both know ON CONFLICT) and set of columns,
    capped or not; a row comes back only if it was inserted."""
    dialect = {"postgresql": postgresql, "sqlite": sqlite}[dialect_name]
    insert = dialect.insert(_TABLE)
    if capped:
        # Every value a typed parameter (the types tell PostgreSQL what each one is), selected from
        # the sum of what is on the way, and only while the sum is at most the bound.
        on_the_way = _share_on_the_way(excluding=False).subquery("on_the_way")
        insert = insert.from_select(
            [column for column in _TABLE.c if column.key in columns],
            sa.select(
                *(sa.bindparam(column.key, type_=column.type) for column in _TABLE.c if column.key in columns)
            )
            .select_from(on_the_way)
            .where(on_the_way.c.share <= sa.bindparam("on_the_way_at_most", type_=sa.BigInteger)),
        )
    return insert.on_conflict_do_nothing(index_elements=["marketplace_id", "creation_key"]).returning(
        _TABLE.c.id
    )


def created_with_key(session: Session, marketplace_id: str, creation_key: str) -> Payment | None:
    """The marketplace's payment created with this Idempotency-Key, if any."""
    return session.scalar(
        sa.select(Payment).where(
            Payment.marketplace_id == marketplace_id, Payment.creation_key == creation_key
        )
    )


def locked_by_gateway_reference(session: Session, gateway: str, gateway_reference: str) -> Payment | None:
    """The payment the gateway's transaction is for, locked."""
    return session.scalar(
        sa.select(Payment)
        .where(Payment.gateway == gateway, Payment.gateway_reference == gateway_reference)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


def id_by_gateway_reference(session: Session, gateway: str, gateway_reference: str) -> str | None:
    return session.scalar(
        sa.select(Payment.id).where(
            Payment.gateway == gateway, Payment.gateway_reference == gateway_reference
        )
    )


def id_if_through(session: Session, payment_id: str, gateway: str) -> str | None:
    """``payment_id`` if such a payment exists and went through ``gateway``."""
    return session.scalar(sa.select(Payment.id).where(Payment.id == payment_id, Payment.gateway == gateway))


def _share_on_the_way(*, excluding: bool) -> sa.Select[tuple[int]]:
    payments = _TABLE.c
    captured_or_authorised = sa.case(
        (payments.status == PaymentStatus.SUCCEEDED, payments.amount_captured), else_=payments.amount
    )
    share = captured_or_authorised - payments.application_fee
    # The partial index's own condition, word for word: it reads the artisan's few payments on
    # their way, never their whole history.
    query = sa.select(sa.func.coalesce(sa.func.sum(share), 0).label("share")).where(
        payments.artisan_id == sa.bindparam("artisan_id"), sa.text(f"({ON_THE_WAY_TO_THE_LEDGER})")
    )
    return query.where(payments.id != sa.bindparam("excluding")) if excluding else query


# Built once, on the table (a Core statement: the ORM has nothing to add to a sum): this runs in
# every creation and confirmation.
_SHARE_ON_THE_WAY = _share_on_the_way(excluding=False)
_SHARE_ON_THE_WAY_EXCLUDING = _share_on_the_way(excluding=True)


def artisan_share_on_the_way(session: Session, artisan_id: str, *, excluding: str | None = None) -> int:
    """The artisan's share of payments on their way to the ledger: confirmed and not final, or
    succeeded but not yet seen in the ledger (whose balance the payee row holds).

    A succeeded payment counts what the ledger will be told: the amount captured less the whole
    commission (a partial capture keeps the whole fee, as ``payments.payment.succeeded`` says). One
    still on its way counts its authorised amount: the most it may yet capture.
    """
    connection = session.connection()
    if excluding is None:
        return int(connection.execute(_SHARE_ON_THE_WAY, {"artisan_id": artisan_id}).scalar_one())
    return int(
        connection.execute(
            _SHARE_ON_THE_WAY_EXCLUDING, {"artisan_id": artisan_id, "excluding": excluding}
        ).scalar_one()
    )


def mark_ledger_posted(session: Session, payment_id: str) -> None:
    """The ledger has posted the payment's entry: it no longer counts as on its way there."""
    session.execute(sa.update(Payment).where(Payment.id == payment_id).values(ledger_posted=True))
