"""usage ledger rows carry their entry id: a row journaled before a crash is inserted once

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06

Rows written before this revision keep a NULL id (NULLs never conflict in a unique index). A unique
index rather than a constraint: SQLite adds it without rebuilding the table.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("usage_ledger", sa.Column("entry_id", sa.String(32), nullable=True))
    op.create_index("ix_usage_ledger_entry_id", "usage_ledger", ["entry_id"], unique=True)


def downgrade() -> None:
    op.drop_index("ix_usage_ledger_entry_id", table_name="usage_ledger")
    with op.batch_alter_table("usage_ledger") as batch:
        batch.drop_column("entry_id")
