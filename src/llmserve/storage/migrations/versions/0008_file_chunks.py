"""file contents in 1 MiB chunk rows instead of one BLOB per file

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06

SQLite's substr() over a BLOB reads the whole value, so a download streamed 1 MB at a time read the
whole file for every slice. Existing contents are copied into chunks, one file at a time, and the
column is dropped.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHUNK = 1024 * 1024


def upgrade() -> None:
    chunks = op.create_table(
        "file_chunks",
        sa.Column("file_id", sa.String(64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("file_id", "seq", name="pk_file_chunks"),
    )
    bind = op.get_bind()
    files = sa.table("files", sa.column("id", sa.String), sa.column("content", sa.LargeBinary))
    for (file_id,) in bind.execute(sa.select(files.c.id)).all():
        content = bind.execute(sa.select(files.c.content).where(files.c.id == file_id)).scalar_one()
        rows = [
            {"file_id": file_id, "seq": seq, "data": content[start : start + CHUNK]}
            for seq, start in enumerate(range(0, len(content), CHUNK))
        ]
        if rows:
            op.bulk_insert(chunks, rows)
    with op.batch_alter_table("files") as batch:
        batch.drop_column("content")
    # The foreign key only now: SQLite drops and rebuilds "files" to drop a column, and a cascading
    # key would have taken every copied chunk with it.
    with op.batch_alter_table("file_chunks") as batch:
        batch.create_foreign_key(
            "fk_file_chunks_file_id_files", "files", ["file_id"], ["id"], ondelete="CASCADE"
        )


def downgrade() -> None:
    with op.batch_alter_table("files") as batch:
        batch.add_column(sa.Column("content", sa.LargeBinary(), nullable=True))
    bind = op.get_bind()
    chunks = sa.table(
        "file_chunks", sa.column("file_id", sa.String), sa.column("seq", sa.Integer), sa.column("data")
    )
    files = sa.table("files", sa.column("id", sa.String), sa.column("content", sa.LargeBinary))
    for (file_id,) in bind.execute(sa.select(files.c.id)).all():
        parts = bind.execute(
            sa.select(chunks.c.data).where(chunks.c.file_id == file_id).order_by(chunks.c.seq)
        ).scalars()
        bind.execute(sa.update(files).where(files.c.id == file_id).values(content=b"".join(parts)))
    op.drop_table("file_chunks")
