"""calls.from_number / calls.to_number hold any Twilio address: 20 → 255 characters

Twilio's ``From``/``To`` are E.164 numbers for the phone network, but ``sip:user@host``
URIs for SIP calls and ``client:identity`` for Twilio Client (the Voice SDK): at 20
characters the voice webhook of a real SIP call failed on Postgres.

Revision ID: 0005_call_address_width
Revises: 0004_lead_custom_fields
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_call_address_width"
down_revision: str | None = "0004_lead_custom_fields"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_CHARS = 20
NEW_CHARS = 255


def upgrade() -> None:
    with op.batch_alter_table("calls") as batch:
        for column in ("from_number", "to_number"):
            batch.alter_column(
                column,
                existing_type=sa.String(length=OLD_CHARS),
                type_=sa.String(length=NEW_CHARS),
                existing_nullable=True,
            )


def downgrade() -> None:
    for column in ("from_number", "to_number"):
        op.execute(f"UPDATE calls SET {column} = substr({column}, 1, {OLD_CHARS})")  # noqa: S608 - fixed names
    with op.batch_alter_table("calls") as batch:
        for column in ("from_number", "to_number"):
            batch.alter_column(
                column,
                existing_type=sa.String(length=NEW_CHARS),
                type_=sa.String(length=OLD_CHARS),
                existing_nullable=True,
            )
