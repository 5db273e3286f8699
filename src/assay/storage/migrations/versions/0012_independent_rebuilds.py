"""independent rebuilds

Revision ID: 0012
Revises: 0011

Issue 14, item 4: the Sigstore identities a project trusts to rebuild its sdists
(rebuilders), their verified match and mismatch reports per wheel (rebuild_attestations), and
how many rebuilders must have matched before a stage may be approved
(projects.rebuilds_required, 0 for existing rows).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rebuilders",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("index_id", sa.Integer(), server_default="1", nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("issuer", sa.String(length=500), nullable=False),
        sa.Column("identity", sa.String(length=500), nullable=False),
        sa.Column("identity_kind", sa.String(length=10), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["index_id"], ["indexes.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("project_id", "issuer", "identity", name="uq_rebuilders_identity"),
    )
    with op.batch_alter_table("rebuilders", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_rebuilders_index_id"), ["index_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_rebuilders_project_id"), ["project_id"], unique=False)

    op.create_table(
        "rebuild_attestations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("index_id", sa.Integer(), server_default="1", nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("canonical_version", sa.String(length=100), nullable=False),
        sa.Column("filename", sa.String(length=300), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("rebuilt_sha256", sa.String(length=64), nullable=False),
        sa.Column("outcome", sa.String(length=10), nullable=False),
        sa.Column("rebuilder_id", sa.Integer(), nullable=False),
        sa.Column("attestation", sa.JSON(), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["index_id"], ["indexes.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["rebuilder_id"], ["rebuilders.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("index_id", "filename", "sha256", "rebuilder_id", name="uq_rebuild_attestations_one"),
    )
    with op.batch_alter_table("rebuild_attestations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_rebuild_attestations_filename"), ["filename"], unique=False)
        batch_op.create_index(batch_op.f("ix_rebuild_attestations_index_id"), ["index_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_rebuild_attestations_project_id"), ["project_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_rebuild_attestations_rebuilder_id"), ["rebuilder_id"], unique=False)

    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.add_column(sa.Column("rebuilds_required", sa.Integer(), server_default="0", nullable=False))



def downgrade() -> None:
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.drop_column("rebuilds_required")

    with op.batch_alter_table("rebuild_attestations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rebuild_attestations_rebuilder_id"))
        batch_op.drop_index(batch_op.f("ix_rebuild_attestations_project_id"))
        batch_op.drop_index(batch_op.f("ix_rebuild_attestations_index_id"))
        batch_op.drop_index(batch_op.f("ix_rebuild_attestations_filename"))

    op.drop_table("rebuild_attestations")
    with op.batch_alter_table("rebuilders", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rebuilders_project_id"))
        batch_op.drop_index(batch_op.f("ix_rebuilders_index_id"))

    op.drop_table("rebuilders")
