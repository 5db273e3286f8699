"""maintainer identities

Revision ID: 0013
Revises: 0012

Issue 14, item 3: the Sigstore identities (issuer, e-mail or subject) whose PEP 740
attestations a project accepts on an API-token upload (maintainer-signed releases).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "maintainer_identities",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("index_id", sa.Integer(), server_default="1", nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("issuer", sa.String(length=500), nullable=False),
        sa.Column("identity_kind", sa.String(length=10), nullable=False),
        sa.Column("value", sa.String(length=500), nullable=False),
        sa.Column("added", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["index_id"], ["indexes.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("project_id", "issuer", "identity_kind", "value", name="uq_maintainer_identities_identity"),
    )
    with op.batch_alter_table("maintainer_identities", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_maintainer_identities_index_id"), ["index_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_maintainer_identities_project_id"), ["project_id"], unique=False)



def downgrade() -> None:
    with op.batch_alter_table("maintainer_identities", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_maintainer_identities_project_id"))
        batch_op.drop_index(batch_op.f("ix_maintainer_identities_index_id"))

    op.drop_table("maintainer_identities")
