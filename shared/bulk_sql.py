"""Set-based writes: many rows of a table in one statement.

On PostgreSQL the rows travel as one array per column, and ``unnest`` turns them back into rows
(``INSERT … SELECT … FROM unnest(…)``): one statement and one round trip whatever the number of
rows, with a text that never changes, so the server plans it once per connection. The arrays are
sent in PostgreSQL's binary format (psycopg's ``%(name)b`` placeholders, so the statement is the
driver's own SQL): the text format would escape every quote of every JSON payload, in Python.
Elsewhere (SQLite, ``make run``) the same rows go as an executemany of a plain INSERT: slower, the
same rows.

Columns are given column by column (name -> values, all of one length), the shape the arrays
need. Values go to the database as they are: datetimes must be timezone-aware UTC
(``shared.db.utcnow``), as ``UTCDateTime`` columns want them.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session


def insert_many(session: Session, table: sa.Table, columns: Mapping[str, Sequence[Any]]) -> None:
    """Insert the rows ``columns`` spells (column name -> values) into ``table``, in order."""
    connection = session.connection()
    names = tuple(columns)
    if not names or not len(columns[names[0]]):
        return
    if connection.dialect.name == "postgresql":
        statement = insert_from_arrays(table, names, connection.dialect)
        connection.exec_driver_sql(statement, array_parameters(table, columns))
        return
    rows = [dict(zip(names, values, strict=True)) for values in zip(*columns.values(), strict=True)]
    connection.execute(table.insert(), rows)


@functools.cache
def insert_from_arrays(table: sa.Table, names: tuple[str, ...], dialect: Dialect) -> str:
    """PostgreSQL's ``INSERT INTO table (names) SELECT … FROM unnest(…)`` over one binary array
    parameter per column (named ``<table>__<column>``, see ``array_parameters``), as driver SQL
    (``exec_driver_sql``); rows kept in array order, so a serial column numbers them as they were
    given. Usable alone or as a data-modifying CTE."""
    arrays = ", ".join(
        f"CAST(%({table.name}__{name})b AS {table.c[name].type.compile(dialect=dialect)}[])" for name in names
    )
    listed = ", ".join(names)
    return (
        f"INSERT INTO {table.name} ({listed}) SELECT {listed} "
        f"FROM unnest({arrays}) WITH ORDINALITY AS given({listed}, given_order) ORDER BY given_order"
    )


def array_parameters(table: sa.Table, columns: Mapping[str, Sequence[Any]]) -> dict[str, list[Any]]:
    """The parameters ``insert_from_arrays`` names: one list per column."""
    return {f"{table.name}__{name}": list(values) for name, values in columns.items()}
