"""indexes as first-class objects (issue 11, part 3): an ``indexes`` table, and the projects,
files, filenames ever used, tokens and publishers of each index

Everything that existed before belongs to the default index (id 1, created here), so an
existing single-index database keeps every row and every URL. The rules that were global
become per index: a project name, a filename, a file's sha256 and a publisher's lookup key are
unique within their index.

SQLite cannot drop a constraint in place, so Alembic's batch mode copies each table; the
unnamed constraints of revision 0001 are found by a naming convention (Alembic's documented
way for SQLite), and on PostgreSQL by the names PostgreSQL gave them. ``Database.migrate``
turns SQLite's foreign keys off for the copy: dropping the old ``projects`` table would
otherwise cascade into every release and file.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

#: How SQLite's reflected, unnamed constraints get a name the batch copy can drop.
_CONVENTION = {"uq": "uq_%(table_name)s_%(column_0_name)s"}


def _index_id() -> sa.Column[int]:
    return sa.Column("index_id", sa.Integer(), server_default="1", nullable=False)


def _old_unique(table: str, column: str) -> str:
    sqlite = op.get_bind().dialect.name == "sqlite"
    return f"uq_{table}_{column}" if sqlite else f"{table}_{column}_key"


def _rebuild(table: str, columns: list[Any], copied: str) -> None:
    """``table`` with an ``index_id`` in its primary key: a new table, the rows copied into the
    default index, the old table dropped (its indexes with it) and the new one renamed."""
    op.create_table(
        f"{table}_v6",
        *columns,
        sa.ForeignKeyConstraint(["index_id"], ["indexes.id"], ondelete="CASCADE"),
    )
    # Table and column names are this module's own constants, never input.
    op.execute(f"INSERT INTO {table}_v6 (index_id, {copied}) SELECT 1, {copied} FROM {table}")  # noqa: S608
    op.drop_table(table)
    op.rename_table(f"{table}_v6", table)


def upgrade() -> None:
    op.create_table(
        "indexes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("private", sa.Boolean(), nullable=True),
        sa.Column("audience", sa.String(length=200), nullable=True),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    # The default index, at the site root: every existing row belongs to it (server default 1).
    op.execute("INSERT INTO indexes (id, name, description, created) VALUES (1, 'default', '', CURRENT_TIMESTAMP)")
    if op.get_bind().dialect.name == "postgresql":
        # The explicit id 1 did not move the id sequence: the next index must get 2, not 1.
        op.execute("SELECT setval(pg_get_serial_sequence('indexes', 'id'), 1)")

    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.add_column(_index_id())
        batch_op.create_index(batch_op.f("ix_api_tokens_index_id"), ["index_id"], unique=False)
        batch_op.create_foreign_key("fk_api_tokens_index_id", "indexes", ["index_id"], ["id"], ondelete="CASCADE")

    with op.batch_alter_table("files", schema=None, naming_convention=_CONVENTION) as batch_op:
        batch_op.add_column(_index_id())
        batch_op.drop_constraint(_old_unique("files", "filename"), type_="unique")
        batch_op.drop_constraint(_old_unique("files", "sha256"), type_="unique")
        batch_op.create_index(batch_op.f("ix_files_index_id"), ["index_id"], unique=False)
        batch_op.create_unique_constraint("uq_files_index_filename", ["index_id", "filename"])
        batch_op.create_unique_constraint("uq_files_index_sha256", ["index_id", "sha256"])
        batch_op.create_foreign_key("fk_files_index_id", "indexes", ["index_id"], ["id"], ondelete="CASCADE")

    with op.batch_alter_table("pending_publishers", schema=None) as batch_op:
        batch_op.add_column(_index_id())
        batch_op.create_index(batch_op.f("ix_pending_publishers_index_id"), ["index_id"], unique=False)
        batch_op.create_foreign_key(
            "fk_pending_publishers_index_id", "indexes", ["index_id"], ["id"], ondelete="CASCADE"
        )

    with op.batch_alter_table("projects", schema=None, naming_convention=_CONVENTION) as batch_op:
        batch_op.add_column(_index_id())
        batch_op.drop_constraint(_old_unique("projects", "normalized_name"), type_="unique")
        batch_op.create_index(batch_op.f("ix_projects_index_id"), ["index_id"], unique=False)
        batch_op.create_unique_constraint("uq_projects_index_name", ["index_id", "normalized_name"])
        batch_op.create_foreign_key("fk_projects_index_id", "indexes", ["index_id"], ["id"], ondelete="CASCADE")

    with op.batch_alter_table("publishers", schema=None, naming_convention=_CONVENTION) as batch_op:
        batch_op.add_column(_index_id())
        batch_op.drop_constraint(_old_unique("publishers", "lookup_key"), type_="unique")
        batch_op.create_index(batch_op.f("ix_publishers_index_id"), ["index_id"], unique=False)
        batch_op.create_unique_constraint("uq_publishers_index_lookup_key", ["index_id", "lookup_key"])
        batch_op.create_foreign_key("fk_publishers_index_id", "indexes", ["index_id"], ["id"], ondelete="CASCADE")

    _rebuild(
        "used_filenames",
        [
            sa.Column("index_id", sa.Integer(), server_default="1", nullable=False),
            sa.Column("filename", sa.String(length=300), nullable=False),
            sa.PrimaryKeyConstraint("index_id", "filename"),
        ],
        "filename",
    )

    # One transparency log per index: the default index's is the log there was.
    _rebuild(
        "log_entries",
        [
            sa.Column("index_id", sa.Integer(), server_default="1", nullable=False),
            sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
            sa.Column("kind", sa.String(length=30), nullable=False),
            sa.Column("filename", sa.String(length=300), nullable=True),
            sa.Column("data", sa.LargeBinary(), nullable=False),
            sa.Column("created", sa.DateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint("index_id", "seq"),
        ],
        "seq, kind, filename, data, created",
    )
    op.create_index("ix_log_entries_index_filename", "log_entries", ["index_id", "filename"], unique=False)
    _rebuild(
        "log_hashes",
        [
            sa.Column("index_id", sa.Integer(), server_default="1", nullable=False),
            sa.Column("idx", sa.BigInteger(), autoincrement=False, nullable=False),
            sa.Column("hash", sa.LargeBinary(length=32), nullable=False),
            sa.PrimaryKeyConstraint("index_id", "idx"),
        ],
        "idx, hash",
    )
    _rebuild(
        "log_checkpoints",
        [
            sa.Column("index_id", sa.Integer(), server_default="1", nullable=False),
            sa.Column("size", sa.BigInteger(), autoincrement=False, nullable=False),
            sa.Column("note", sa.LargeBinary(), nullable=False),
            sa.Column("created", sa.DateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint("index_id", "size"),
        ],
        "size, note, created",
    )
    with op.batch_alter_table("log_state", schema=None) as batch_op:
        batch_op.create_foreign_key("fk_log_state_index_id", "indexes", ["id"], ["id"], ondelete="CASCADE")

    # The project-list counter is per index now.
    op.execute("UPDATE counters SET name = 'projects:1' WHERE name = 'projects'")

    if op.get_bind().dialect.name == "sqlite":
        # Foreign keys were off for the copies: prove, before this transaction commits, that
        # every reference still holds (an error here rolls the whole revision back).
        broken = op.get_bind().exec_driver_sql("PRAGMA foreign_key_check").all()
        if broken:
            raise RuntimeError(f"migration 0006 would leave broken references: {broken[:5]}")


def _unbuild(table: str, columns: list[Any], copied: str) -> None:
    """``_rebuild`` backwards: the table without ``index_id``, the default index's rows kept."""
    op.create_table(f"{table}_v5", *columns)
    op.execute(f"INSERT INTO {table}_v5 ({copied}) SELECT {copied} FROM {table} WHERE index_id = 1")  # noqa: S608
    op.drop_table(table)
    op.rename_table(f"{table}_v5", table)


def downgrade() -> None:
    """Back to one index: only possible while the default index is the only one (the rows of
    another could not be told apart afterwards)."""
    others = op.get_bind().exec_driver_sql("SELECT count(*) FROM indexes WHERE id != 1").scalar()
    if others:
        raise RuntimeError("cannot downgrade below 0006: the database has named indexes; delete them first")
    op.execute("UPDATE counters SET name = 'projects' WHERE name = 'projects:1'")
    with op.batch_alter_table("log_state", schema=None) as batch_op:
        batch_op.drop_constraint("fk_log_state_index_id", type_="foreignkey")
    _unbuild(
        "log_checkpoints",
        [
            sa.Column("size", sa.BigInteger(), autoincrement=False, nullable=False),
            sa.Column("note", sa.LargeBinary(), nullable=False),
            sa.Column("created", sa.DateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint("size"),
        ],
        "size, note, created",
    )
    _unbuild(
        "log_hashes",
        [
            sa.Column("idx", sa.BigInteger(), autoincrement=False, nullable=False),
            sa.Column("hash", sa.LargeBinary(length=32), nullable=False),
            sa.PrimaryKeyConstraint("idx"),
        ],
        "idx, hash",
    )
    _unbuild(
        "log_entries",
        [
            sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
            sa.Column("kind", sa.String(length=30), nullable=False),
            sa.Column("filename", sa.String(length=300), nullable=True),
            sa.Column("data", sa.LargeBinary(), nullable=False),
            sa.Column("created", sa.DateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint("seq"),
        ],
        "seq, kind, filename, data, created",
    )
    op.create_index("ix_log_entries_filename", "log_entries", ["filename"], unique=False)
    _unbuild(
        "used_filenames",
        [sa.Column("filename", sa.String(length=300), nullable=False), sa.PrimaryKeyConstraint("filename")],
        "filename",
    )
    with op.batch_alter_table("publishers", schema=None) as batch_op:
        batch_op.drop_constraint("fk_publishers_index_id", type_="foreignkey")
        batch_op.drop_constraint("uq_publishers_index_lookup_key", type_="unique")
        batch_op.drop_index(batch_op.f("ix_publishers_index_id"))
        batch_op.drop_column("index_id")
        batch_op.create_unique_constraint(_old_unique("publishers", "lookup_key"), ["lookup_key"])
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.drop_constraint("fk_projects_index_id", type_="foreignkey")
        batch_op.drop_constraint("uq_projects_index_name", type_="unique")
        batch_op.drop_index(batch_op.f("ix_projects_index_id"))
        batch_op.drop_column("index_id")
        batch_op.create_unique_constraint(_old_unique("projects", "normalized_name"), ["normalized_name"])
    with op.batch_alter_table("pending_publishers", schema=None) as batch_op:
        batch_op.drop_constraint("fk_pending_publishers_index_id", type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_pending_publishers_index_id"))
        batch_op.drop_column("index_id")
    with op.batch_alter_table("files", schema=None) as batch_op:
        batch_op.drop_constraint("fk_files_index_id", type_="foreignkey")
        batch_op.drop_constraint("uq_files_index_filename", type_="unique")
        batch_op.drop_constraint("uq_files_index_sha256", type_="unique")
        batch_op.drop_index(batch_op.f("ix_files_index_id"))
        batch_op.drop_column("index_id")
        batch_op.create_unique_constraint(_old_unique("files", "filename"), ["filename"])
        batch_op.create_unique_constraint(_old_unique("files", "sha256"), ["sha256"])
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_constraint("fk_api_tokens_index_id", type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_api_tokens_index_id"))
        batch_op.drop_column("index_id")
    op.drop_table("indexes")
