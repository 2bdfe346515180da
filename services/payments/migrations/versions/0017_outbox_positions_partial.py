"""outbox: only rows the broker acknowledged are in the index of broker positions

Revision ID: a6d3f9c20017
Revises: 5c8e1a4f0016
Created: 2026-12-07 02:20:00

``ix_outbox_broker_position`` (topic, partition, offset) answers the relay's questions about a
partition: the highest offset the broker acknowledged, and the rows at or after an offset (or all
with one, when its log was rewritten). All are about rows with an offset (``max`` skips nulls; ``offset >= n`` is never true of a null), yet every
row was indexed from its insert on, when it has none. Partial, the index holds the acknowledged
rows only: the relay's update that records a row's position adds its entry, and recording an event
(every state change a service makes) writes one index entry fewer.
"""

from shared.db import rebuild_index

revision = "a6d3f9c20017"
down_revision = "5c8e1a4f0016"
branch_labels = None
depends_on = None

NAME = "ix_outbox_broker_position"
COLUMNS = ["topic", "broker_partition", "broker_offset"]
ACKNOWLEDGED = "broker_offset IS NOT NULL"


def upgrade() -> None:
    rebuild_index(NAME, "outbox", COLUMNS, unique=False, where=ACKNOWLEDGED)


def downgrade() -> None:
    rebuild_index(NAME, "outbox", COLUMNS, unique=False)
