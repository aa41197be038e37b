"""calls.stream_sid / calls.stream_started_at: the Media Stream that claimed the call

A stream token is good for one websocket only: the first ``start`` claims the call row
(``UPDATE ... WHERE stream_sid IS NULL``); a replay on another socket finds it taken.
``stream_started_at`` also tells the campaign reconciler the call really connected.

Revision ID: 0002_call_stream_claim
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import voicebot.db.types

revision: str = "0002_call_stream_claim"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("calls") as batch:
        batch.add_column(sa.Column("stream_sid", sa.String(length=64), nullable=True))
        batch.add_column(
            sa.Column("stream_started_at", voicebot.db.types.UTCDateTime(), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("calls") as batch:
        batch.drop_column("stream_started_at")
        batch.drop_column("stream_sid")
