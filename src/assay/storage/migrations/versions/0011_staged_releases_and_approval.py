"""staged releases and approval

Revision ID: 0011
Revises: 0010

Issue 14: a project's releases may be staged (projects.releases_mode, four_eyes,
approvals_required), a publisher stage-only; a stage (stages) holds its files (staged_files)
until enough owners approve it (stage_approvals) with a TOTP code (users.totp_secret); each
approval's signed statement is kept (approval_statements). Existing rows publish directly.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "approval_statements",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("index_id", sa.Integer(), server_default="1", nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("canonical_version", sa.String(length=100), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["index_id"], ["indexes.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("approval_statements", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_approval_statements_index_id"), ["index_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_approval_statements_project_id"), ["project_id"], unique=False)

    op.create_table(
        "stages",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("index_id", sa.Integer(), server_default="1", nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.String(length=100), nullable=False),
        sa.Column("canonical_version", sa.String(length=100), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["index_id"], ["indexes.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("project_id", "canonical_version", name="uq_stages_project_version"),
    )
    with op.batch_alter_table("stages", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_stages_expires"), ["expires"], unique=False)
        batch_op.create_index(batch_op.f("ix_stages_index_id"), ["index_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_stages_project_id"), ["project_id"], unique=False)

    op.create_table(
        "stage_approvals",
        sa.Column("stage_id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["stage_id"], ["stages.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("stage_id", "user_id"),
    )
    op.create_table(
        "staged_files",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("stage_id", sa.String(length=64), nullable=False),
        sa.Column("index_id", sa.Integer(), server_default="1", nullable=False),
        sa.Column("filename", sa.String(length=300), nullable=False),
        sa.Column("packagetype", sa.String(length=20), nullable=False),
        sa.Column("python_version", sa.String(length=100), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("blake2_256", sa.String(length=64), nullable=False),
        sa.Column("md5", sa.String(length=32), nullable=False),
        sa.Column("upload_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("requires_python", sa.Text(), nullable=True),
        sa.Column("blob_key", sa.String(length=400), nullable=False),
        sa.Column("metadata_blob_key", sa.String(length=420), nullable=True),
        sa.Column("metadata_sha256", sa.String(length=64), nullable=True),
        sa.Column("core_metadata", sa.JSON(), nullable=False),
        sa.Column("uploaded_by_user_id", sa.Integer(), nullable=True),
        sa.Column("uploaded_by_token_id", sa.String(length=64), nullable=True),
        sa.Column("publisher_id", sa.Integer(), nullable=True),
        sa.Column("publisher_claims", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("provenance", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("triggered_by", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(["index_id"], ["indexes.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["stage_id"], ["stages.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["uploaded_by_user_id"], ["users.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("blob_key"),
        sa.UniqueConstraint("index_id", "filename", name="uq_staged_files_index_filename"),
        sa.UniqueConstraint("index_id", "sha256", name="uq_staged_files_index_sha256"),
    )
    with op.batch_alter_table("staged_files", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_staged_files_index_id"), ["index_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_staged_files_stage_id"), ["stage_id"], unique=False)
        batch_op.create_index(
            "uq_staged_files_one_sdist",
            ["stage_id"],
            unique=True,
            sqlite_where=sa.text("packagetype = 'sdist'"),
            postgresql_where=sa.text("packagetype = 'sdist'"),
        )

    with op.batch_alter_table("pending_publishers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("stage_only", sa.Boolean(), server_default=sa.false(), nullable=False))

    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.add_column(sa.Column("releases_mode", sa.String(length=10), server_default="direct", nullable=False))
        batch_op.add_column(sa.Column("four_eyes", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column("approvals_required", sa.Integer(), server_default="1", nullable=False))

    with op.batch_alter_table("publishers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("stage_only", sa.Boolean(), server_default=sa.false(), nullable=False))

    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("totp_secret", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("totp_last_step", sa.BigInteger(), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("totp_last_step")
        batch_op.drop_column("totp_secret")

    with op.batch_alter_table("publishers", schema=None) as batch_op:
        batch_op.drop_column("stage_only")

    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.drop_column("approvals_required")
        batch_op.drop_column("four_eyes")
        batch_op.drop_column("releases_mode")

    with op.batch_alter_table("pending_publishers", schema=None) as batch_op:
        batch_op.drop_column("stage_only")

    with op.batch_alter_table("staged_files", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_staged_files_one_sdist",
            sqlite_where=sa.text("packagetype = 'sdist'"),
            postgresql_where=sa.text("packagetype = 'sdist'"),
        )
        batch_op.drop_index(batch_op.f("ix_staged_files_stage_id"))
        batch_op.drop_index(batch_op.f("ix_staged_files_index_id"))

    op.drop_table("staged_files")
    op.drop_table("stage_approvals")
    with op.batch_alter_table("stages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_stages_project_id"))
        batch_op.drop_index(batch_op.f("ix_stages_index_id"))
        batch_op.drop_index(batch_op.f("ix_stages_expires"))

    op.drop_table("stages")
    with op.batch_alter_table("approval_statements", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_approval_statements_project_id"))
        batch_op.drop_index(batch_op.f("ix_approval_statements_index_id"))

    op.drop_table("approval_statements")
