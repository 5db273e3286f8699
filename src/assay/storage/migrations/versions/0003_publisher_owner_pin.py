"""pin GitHub-family publishers to the repository owner id

Revision ID: 0003
Revises: 0002

Issue 10 item 6: a GitHub-family publisher records the repository owner's numeric id at its first
exchange (NULL until then, so an existing publisher pins at its next one), as PyPI pins it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("publishers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("repository_owner_id", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("publishers", schema=None) as batch_op:
        batch_op.drop_column("repository_owner_id")
