"""Index ``campaign_attempts.call_id``: the webhooks and the reconciler find an attempt by
its call, and deleting a call (``ON DELETE SET NULL``) must not scan every attempt.

Revision ID: 0007_attempt_call_id_index
Revises: 0006_console_indexes
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0007_attempt_call_id_index"
down_revision: str | None = "0006_console_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_campaign_attempts_call_id", "campaign_attempts", ["call_id"])


def downgrade() -> None:
    op.drop_index("ix_campaign_attempts_call_id", table_name="campaign_attempts")
