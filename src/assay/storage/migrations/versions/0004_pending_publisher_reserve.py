"""pending publishers may reserve their project name

Revision ID: 0004
Revises: 0003

Issue 10 item 9: ``assay admin publisher add ... --reserve`` keeps a pending publisher's project
name for its first trusted publish (existing pending publishers reserve nothing).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("pending_publishers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reserve", sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("pending_publishers", schema=None) as batch_op:
        batch_op.drop_column("reserve")
