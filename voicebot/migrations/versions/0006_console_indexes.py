"""Indexes for the operations console's pages (≤ 150 ms p95 with 50,000 calls)

- ``calls.created_at``: today's calls by outcome, the calls list by date;
- ``calls (id) WHERE ended_at IS NULL``: the live calls the overview polls every 2 s
  (a handful among all calls ever made);
- ``calls (campaign_id, id)``: a campaign's calls, newest first;
- ``call_turns.created_at``: turn latency percentiles of the last hour;
- ``meetings.call_id``: a call's meeting on the call page.

Revision ID: 0006_console_indexes
Revises: 0005_call_address_width
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_console_indexes"
down_revision: str | None = "0005_call_address_width"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LIVE = sa.text("ended_at IS NULL")


def upgrade() -> None:
    op.create_index("ix_calls_created_at", "calls", ["created_at"])
    op.create_index("ix_calls_live", "calls", ["id"], postgresql_where=LIVE, sqlite_where=LIVE)
    op.create_index("ix_calls_campaign_id_id", "calls", ["campaign_id", "id"])
    op.create_index("ix_call_turns_created_at", "call_turns", ["created_at"])
    op.create_index("ix_meetings_call_id", "meetings", ["call_id"])


def downgrade() -> None:
    op.drop_index("ix_meetings_call_id", table_name="meetings")
    op.drop_index("ix_call_turns_created_at", table_name="call_turns")
    op.drop_index("ix_calls_campaign_id_id", table_name="calls")
    op.drop_index("ix_calls_live", table_name="calls")
    op.drop_index("ix_calls_created_at", table_name="calls")
