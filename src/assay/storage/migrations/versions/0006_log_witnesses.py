"""log witnesses (issue 13 item 5): the witness keys an index accepts, their cosignatures

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "log_witnesses",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("index_id", sa.Integer(), server_default="1", nullable=False),
        sa.Column("label", sa.String(length=100), nullable=False),
        sa.Column("vkey", sa.String(length=300), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("index_id", "label"),
        sa.UniqueConstraint("index_id", "vkey"),
    )
    op.create_table(
        "log_cosignatures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("index_id", sa.Integer(), server_default="1", nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("witness_id", sa.Integer(), nullable=False),
        sa.Column("text_sha256", sa.String(length=64), nullable=False),
        sa.Column("line", sa.String(length=500), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["witness_id"], ["log_witnesses.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("index_id", "size", "witness_id"),
    )
    with op.batch_alter_table("log_cosignatures", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_log_cosignatures_size"), ["size"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("log_cosignatures", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_log_cosignatures_size"))
    op.drop_table("log_cosignatures")
    op.drop_table("log_witnesses")
