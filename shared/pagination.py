"""Cursor pagination: ``?limit=&starting_after=`` -> ``{data, has_more, next_cursor}``.

The cursor is the id of the last item returned. Ids are time-sortable, so "after this id" is a
stable position even while new rows arrive (no skipped or repeated items, unlike offsets).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import sqlalchemy as sa
from marshmallow import Schema, fields, validate
from sqlalchemy.orm import Session

DEFAULT_LIMIT = 20
MAX_LIMIT = 100


class PageArgsSchema(Schema):
    limit = fields.Integer(
        load_default=DEFAULT_LIMIT,
        validate=validate.Range(min=1, max=MAX_LIMIT),
        metadata={"description": f"Items per page, 1 to {MAX_LIMIT}."},
    )
    starting_after = fields.String(
        load_default=None,
        validate=validate.Length(min=1, max=64),
        metadata={"description": "The `next_cursor` of the previous page."},
    )


@dataclasses.dataclass
class Page:
    data: list[Any]
    has_more: bool
    next_cursor: str | None


def paginate(
    session: Session,
    query: sa.Select[Any],
    id_column: Any,
    *,
    limit: int = DEFAULT_LIMIT,
    starting_after: str | None = None,
) -> Page:
    """Run ``query`` ordered by ``id_column`` ascending, one page at a time."""
    if starting_after:
        query = query.where(id_column > starting_after)
    rows = list(session.scalars(query.order_by(id_column).limit(limit + 1)))
    has_more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = getattr(rows[-1], id_column.key) if has_more and rows else None
    return Page(data=rows, has_more=has_more, next_cursor=next_cursor)


def page_schema(item_schema: type[Schema]) -> type[Schema]:
    """An output schema ``{data: [item], has_more, next_cursor}`` for OpenAPI and dumping."""
    return type(
        f"{item_schema.__name__.removesuffix('Schema')}PageSchema",
        (Schema,),
        {
            "data": fields.List(fields.Nested(item_schema), required=True),
            "has_more": fields.Boolean(required=True),
            "next_cursor": fields.String(allow_none=True, required=True),
        },
    )
