"""campaign engine: attempts, pacing/retry/calendar/consent/voicemail fields, lead time zone

* ``campaigns.calls_per_second`` (float) replaces ``calls_per_minute`` (values / 60);
  ``retry_base_min`` replaces ``retry_delay_min`` (same values); new ``retry_max_min``,
  ``calendar``, ``blocked_dates``, ``consent_required``, ``voicemail_action``,
  ``voicemail_retry``, ``status_reason`` and the sweeper lease (``lease_owner``,
  ``lease_until``).
* ``leads.timezone`` (per-lead override) and ``leads.voicemail_left_at``.
* ``campaign_attempts``: one row per dial, unique per (member, attempt number) and per
  idempotency key; at most one live attempt per lead (partial unique index).

Revision ID: 0003_campaign_engine
Revises: 0002_call_stream_claim
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import voicebot.db.types

revision: str = "0003_campaign_engine"
down_revision: str | None = "0002_call_stream_claim"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LIVE = sa.text("status IN ('claimed', 'dialing', 'placed')")
JSON = sa.JSON().with_variant(sa.dialects.postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("campaigns") as batch:
        batch.add_column(
            sa.Column("calls_per_second", sa.Float(), nullable=False, server_default="1.0")
        )
        batch.add_column(
            sa.Column("retry_base_min", sa.Integer(), nullable=False, server_default="30")
        )
        batch.add_column(
            sa.Column("retry_max_min", sa.Integer(), nullable=False, server_default="240")
        )
        batch.add_column(
            sa.Column("calendar", sa.String(length=8), nullable=False, server_default="IL")
        )
        batch.add_column(sa.Column("blocked_dates", JSON, nullable=False, server_default="[]"))
        batch.add_column(
            sa.Column("consent_required", sa.Boolean(), nullable=False, server_default=sa.true())
        )
        batch.add_column(
            sa.Column(
                "voicemail_action",
                sa.String(length=16),
                nullable=False,
                server_default="leave_message",
            )
        )
        batch.add_column(
            sa.Column("voicemail_retry", sa.Boolean(), nullable=False, server_default=sa.true())
        )
        batch.add_column(sa.Column("status_reason", sa.String(length=500), nullable=True))
        batch.add_column(sa.Column("lease_owner", sa.String(length=64), nullable=True))
        batch.add_column(
            sa.Column("lease_until", voicebot.db.types.UTCDateTime(timezone=True), nullable=True)
        )
    op.execute(
        "UPDATE campaigns SET calls_per_second = calls_per_minute / 60.0, "
        "retry_base_min = retry_delay_min"
    )
    with op.batch_alter_table("campaigns") as batch:
        batch.drop_column("calls_per_minute")
        batch.drop_column("retry_delay_min")

    with op.batch_alter_table("leads") as batch:
        batch.add_column(sa.Column("timezone", sa.String(length=64), nullable=True))
        batch.add_column(
            sa.Column(
                "voicemail_left_at", voicebot.db.types.UTCDateTime(timezone=True), nullable=True
            )
        )

    op.create_table(
        "campaign_attempts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("lead_id", sa.Integer(), nullable=False),
        sa.Column("attempt_no", sa.Integer(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("twilio_error_code", sa.Integer(), nullable=True),
        sa.Column("call_id", sa.Integer(), nullable=True),
        sa.Column("call_sid", sa.String(length=64), nullable=True),
        sa.Column("claimed_by", sa.String(length=64), nullable=True),
        sa.Column("dialing_at", voicebot.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("placed_at", voicebot.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("ended_at", voicebot.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", voicebot.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", voicebot.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["call_id"],
            ["calls.id"],
            name=op.f("fk_campaign_attempts_call_id_calls"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_campaign_attempts_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["lead_id"],
            ["leads.id"],
            name=op.f("fk_campaign_attempts_lead_id_leads"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["member_id"],
            ["campaign_leads.id"],
            name=op.f("fk_campaign_attempts_member_id_campaign_leads"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaign_attempts")),
        sa.UniqueConstraint(
            "idempotency_key", name=op.f("uq_campaign_attempts_idempotency_key")
        ),
        sa.UniqueConstraint("member_id", "attempt_no", name="uq_campaign_attempts_member_no"),
    )
    op.create_index(
        "uq_campaign_attempts_live_lead",
        "campaign_attempts",
        ["lead_id"],
        unique=True,
        postgresql_where=LIVE,
        sqlite_where=LIVE,
    )
    op.create_index(
        "ix_campaign_attempts_campaign_status", "campaign_attempts", ["campaign_id", "status"]
    )
    op.create_index("ix_campaign_attempts_call_sid", "campaign_attempts", ["call_sid"])


def downgrade() -> None:
    op.drop_index("ix_campaign_attempts_call_sid", table_name="campaign_attempts")
    op.drop_index("ix_campaign_attempts_campaign_status", table_name="campaign_attempts")
    op.drop_index("uq_campaign_attempts_live_lead", table_name="campaign_attempts")
    op.drop_table("campaign_attempts")
    with op.batch_alter_table("leads") as batch:
        batch.drop_column("voicemail_left_at")
        batch.drop_column("timezone")
    with op.batch_alter_table("campaigns") as batch:
        batch.add_column(
            sa.Column("calls_per_minute", sa.Integer(), nullable=False, server_default="10")
        )
        batch.add_column(
            sa.Column("retry_delay_min", sa.Integer(), nullable=False, server_default="60")
        )
    op.execute(
        "UPDATE campaigns SET calls_per_minute = "
        "CAST(CASE WHEN calls_per_second * 60 < 1 THEN 1 ELSE calls_per_second * 60 END AS INTEGER), "
        "retry_delay_min = retry_base_min"
    )
    with op.batch_alter_table("campaigns") as batch:
        for column in (
            "lease_until",
            "lease_owner",
            "status_reason",
            "voicemail_retry",
            "voicemail_action",
            "consent_required",
            "blocked_dates",
            "calendar",
            "retry_max_min",
            "retry_base_min",
            "calls_per_second",
        ):
            batch.drop_column(column)
