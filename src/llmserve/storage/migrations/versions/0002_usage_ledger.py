"""usage ledger: one row per upstream call, with tokens and exact cost

Revision ID: 0002
Revises: 0001
Create Date: 2025-01-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the model's types: a migration must not change when models.py does later.
# SQLite has no exact decimal, so cost_usd there is an INTEGER count of 1e-10 USD (see ExactDecimal).
MONEY = sa.Numeric(20, 10).with_variant(sa.BigInteger(), "sqlite")
ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # INTEGER PRIMARY KEY = SQLite rowid
INDEXED = ("created_at", "api_key", "model")


def upgrade() -> None:
    op.create_table(
        "usage_ledger",
        sa.Column("id", ROW_ID, autoincrement=True, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("api_key", sa.String(255), nullable=True),
        sa.Column("model", sa.String(255), nullable=False),
        sa.Column("deployment", sa.String(255), nullable=False),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False),
        sa.Column("completion_tokens", sa.Integer(), nullable=False),
        sa.Column("cost_usd", MONEY, nullable=False),
        sa.Column("cache_status", sa.String(16), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("tokens_estimated", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_usage_ledger"),
    )
    for column in INDEXED:
        op.create_index(f"ix_usage_ledger_{column}", "usage_ledger", [column])


def downgrade() -> None:
    for column in INDEXED:
        op.drop_index(f"ix_usage_ledger_{column}", table_name="usage_ledger")
    op.drop_table("usage_ledger")
