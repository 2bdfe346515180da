"""broker positions: where the broker put each published event, and the topic ids each reader saw;
succeeded payments awaiting the ledger, indexed

The relay records the partition and offset the broker acknowledged for each outbox row, and the
relay and the consumers record the ids of the cluster and topics they read: together they tell a
broker that lost acknowledged records (a topic made anew, a log cut short) from one that did not.

Revision ID: 4b7e1d2c1010
Revises: 8b3f6d2a9c41
Created: 2026-12-02 09:00:00
"""

import sqlalchemy as sa
from alembic import op

import shared.db

revision = "4b7e1d2c1010"
down_revision = "8b3f6d2a9c41"
branch_labels = None
depends_on = None

AWAITING_LEDGER = "status = 'succeeded' AND ledger_posted = false"


def upgrade() -> None:
    # Nullable: rows published before this revision have no recorded position.
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("broker_partition", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("broker_offset", sa.BigInteger(), nullable=True))
        batch_op.create_index(
            "ix_outbox_broker_position", ["topic", "broker_partition", "broker_offset"], unique=False
        )
    op.create_table(
        "broker_topics",
        sa.Column("reader", sa.String(length=80), nullable=False),
        sa.Column("topic", sa.String(length=120), nullable=False),
        sa.Column("partition", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("cluster_id", sa.String(length=80), nullable=True),
        sa.Column("topic_id", sa.String(length=80), nullable=True),
        sa.Column("seen_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("reader", "topic", "partition"),
    )

    # Accounts' completeness check asks for the succeeded payments the ledger has not confirmed.
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.create_index(
            "ix_payments_awaiting_ledger",
            ["succeeded_at"],
            unique=False,
            postgresql_where=sa.text(AWAITING_LEDGER),
            sqlite_where=sa.text(AWAITING_LEDGER),
        )


def downgrade() -> None:
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.drop_index("ix_payments_awaiting_ledger")
    op.drop_table("broker_topics")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_broker_position")
        batch_op.drop_column("broker_offset")
        batch_op.drop_column("broker_partition")
