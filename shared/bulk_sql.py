"""Set-based SQL: many rows of a table written, or looked up, in one statement.

On PostgreSQL the rows travel as one array per column, and ``unnest`` turns them back into rows
(``INSERT … SELECT … FROM unnest(…)``), a value shared by every row as a single parameter: one
statement and one round trip whatever the number of rows, with a text that never changes, so the
server plans it once per connection. The arrays are sent in PostgreSQL's binary format (psycopg's
``%(name)b`` placeholders, so these statements are the driver's own SQL): the text format would
escape every quote of every JSON payload, in Python. Elsewhere (SQLite, ``make run``) the same rows
go as an executemany of a plain INSERT: slower, the same rows.

Columns are given column by column (name -> values, all of one length), the shape the arrays
need, or as ``Same(value)`` for a value every row has. Values go to the database as they are:
datetimes must be timezone-aware UTC (``shared.db.utcnow``), as ``UTCDateTime`` columns want them.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session


@dataclasses.dataclass(frozen=True)
class Same:
    """A column's value on every row of an ``insert_many``."""

    value: Any


Columns = Mapping[str, "Sequence[Any] | Same"]


def insert_many(session: Session, table: sa.Table, columns: Columns, rows: int) -> None:
    """Insert ``rows`` rows into ``table``, in order: ``columns`` gives each column's values (or the
    ``Same`` value of every row)."""
    if not rows:
        return
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        statement = insert_from_arrays(table, shape_of(columns), connection.dialect)
        connection.exec_driver_sql(statement, array_parameters(table, columns))
        return
    per_row = {name: values for name, values in columns.items() if not isinstance(values, Same)}
    same = {name: values.value for name, values in columns.items() if isinstance(values, Same)}
    listed = [
        {**same, **dict(zip(per_row, values, strict=True))} for values in zip(*per_row.values(), strict=True)
    ]
    connection.execute(table.insert(), listed or [same] * rows)


def shape_of(columns: Columns) -> tuple[tuple[str, bool], ...]:
    """(column, is it ``Same``) pairs: what ``insert_from_arrays`` builds its statement from."""
    return tuple((name, isinstance(values, Same)) for name, values in columns.items())


@functools.cache
def insert_from_arrays(table: sa.Table, shape: tuple[tuple[str, bool], ...], dialect: Dialect) -> str:
    """PostgreSQL's ``INSERT INTO table (…) SELECT … FROM unnest(…)`` over one binary array
    parameter per column (a single value for a ``Same`` one), named ``<table>__<column>`` (see
    ``array_parameters``), as driver SQL (``exec_driver_sql``); rows kept in array order, so a
    serial column numbers them as they were given. ``shape``: (column, is it ``Same``) pairs.
    Usable alone or as a data-modifying CTE."""

    def cast(name: str, array: bool) -> str:
        sql_type = table.c[name].type.compile(dialect=dialect)
        return f"CAST(%({table.name}__{name})b AS {sql_type}{'[]' if array else ''})"

    per_row = [name for name, same in shape if not same]
    arrays = ", ".join(cast(name, True) for name in per_row)
    values = ", ".join(name if not same else cast(name, False) for name, same in shape)
    return (
        f"INSERT INTO {table.name} ({', '.join(name for name, _ in shape)}) SELECT {values} "
        f"FROM unnest({arrays}) WITH ORDINALITY AS given({', '.join(per_row)}, given_order) "
        "ORDER BY given_order"
    )


def array_parameters(table: sa.Table, columns: Columns) -> dict[str, Any]:
    """The parameters ``insert_from_arrays`` names: a list per column, a value per ``Same`` one."""
    return {
        f"{table.name}__{name}": values.value if isinstance(values, Same) else list(values)
        for name, values in columns.items()
    }


def present(session: Session, column: sa.Column[Any], values: Iterable[Any], **equal: Any) -> set[Any]:
    """Which of ``values`` ``column`` holds, among the rows whose other columns ``equal`` say: one
    statement for the lot, one index probe per value whatever the table's size.

    On PostgreSQL the values are an array, each looked up on its own (a LATERAL subquery with
    LIMIT 1, which the planner cannot turn into a scan of the table): ``column = ANY($1)`` would
    be planned once per connection (a prepared statement), possibly while the table was small, as
    a scan comparing every row with every value, a cost that grows with the table's history."""
    values = list(values)
    if not values:
        return set()
    connection = session.connection()
    table = column.table
    if connection.dialect.name == "postgresql":
        sql_type = column.type.compile(dialect=connection.dialect)
        conditions = [f"{name} = %({name})s" for name in equal]
        conditions.append(f"{column.name} = given.value")
        statement = (
            f"SELECT found.{column.name} FROM unnest(CAST(%(present__values)b AS {sql_type}[])) AS given(value) "
            f"CROSS JOIN LATERAL (SELECT {column.name} FROM {table.name} WHERE {' AND '.join(conditions)} "
            "LIMIT 1) AS found"
        )
        return set(connection.exec_driver_sql(statement, {**equal, "present__values": values}).scalars())
    query = sa.select(column).where(
        *(table.c[name] == value for name, value in equal.items()), column.in_(values)
    )
    return set(connection.execute(query).scalars())
