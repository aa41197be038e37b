"""leads.custom_fields: the columns of an imported CSV file that map to no lead field

A CRM export carries columns of its own ("עיר", "Source", "מספר עובדים"); the importer
keeps them on the lead as a JSON object of header → text instead of dropping them.

Revision ID: 0004_lead_custom_fields
Revises: 0003_campaign_engine
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import voicebot.db.types

revision: str = "0004_lead_custom_fields"
down_revision: str | None = "0003_campaign_engine"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("leads") as batch:
        batch.add_column(
            sa.Column(
                "custom_fields",
                voicebot.db.types.JSONType,
                nullable=False,
                server_default=sa.text("'{}'"),
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("leads") as batch:
        batch.drop_column("custom_fields")
