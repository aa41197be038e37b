"""campaigns.eligibility_url: the pre-dial eligibility webhook

Revision ID: 0009_campaign_eligibility_url
Revises: 0008_webhooks_recordings_sms
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_campaign_eligibility_url"
down_revision: str | None = "0008_webhooks_recordings_sms"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("campaigns") as batch:
        batch.add_column(sa.Column("eligibility_url", sa.String(length=2000), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("campaigns") as batch:
        batch.drop_column("eligibility_url")
