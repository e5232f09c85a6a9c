"""conversations have an owner: the tenant (API key) that started them

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04

Conversations stored before this revision had no owner; they become the anonymous tenant's (what
every caller was with authentication off). With authentication on, no key can read them.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.add_column(sa.Column("owner", sa.String(255), nullable=False, server_default="anonymous"))


def downgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.drop_column("owner")
