"""an index of stored response items by id, for item_reference inputs

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06

Responses stored before this revision are indexed here too (their input and output items).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    items = op.create_table(
        "response_items",
        sa.Column("owner", sa.String(255), nullable=False),
        sa.Column("item_id", sa.String(64), nullable=False),
        sa.Column("response_id", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("owner", "item_id", name="pk_response_items"),
        sa.ForeignKeyConstraint(
            ["response_id"],
            ["responses.id"],
            name="fk_response_items_response_id_responses",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_response_items_response_id", "response_items", ["response_id"])
    responses = sa.table(
        "responses",
        sa.column("id", sa.String),
        sa.column("owner", sa.String),
        sa.column("request", sa.JSON),
        sa.column("output", sa.JSON),
    )
    seen: set[tuple[str, str]] = set()
    rows = []
    query = sa.select(responses.c.id, responses.c.owner, responses.c.request, responses.c.output)
    for response_id, owner, request, output in op.get_bind().execute(query.order_by(responses.c.id)):
        request = json.loads(request) if isinstance(request, str) else request or {}
        output = json.loads(output) if isinstance(output, str) else output or []
        for item in [*request.get("input", []), *output]:
            item_id = item.get("id") if isinstance(item, dict) else None
            if isinstance(item_id, str) and (owner, item_id) not in seen:
                seen.add((owner, item_id))
                rows.append({"owner": owner, "item_id": item_id, "response_id": response_id})
    if rows:
        op.bulk_insert(items, rows)


def downgrade() -> None:
    op.drop_index("ix_response_items_response_id", "response_items")
    op.drop_table("response_items")
