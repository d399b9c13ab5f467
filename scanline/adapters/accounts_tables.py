"""Tables of the account functions (created by migration 0002_accounts)."""

from __future__ import annotations

import sqlalchemy as sa

from scanline.adapters.tables import metadata

_now = sa.func.now()

users = sa.Table(
    "users", metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    # Normalised (see scanline.domain.users.normalise_email); unique case-insensitively.
    sa.Column("email", sa.Text, nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("password_hash", sa.Text, nullable=False),
    sa.Column("verified_at", sa.DateTime(timezone=True)),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)
USERS_EMAIL_INDEX = "users_email_lower_key"
sa.Index(USERS_EMAIL_INDEX, sa.func.lower(users.c.email), unique=True)

# At most one live code per user: issuing a new one replaces the row.
otp_codes = sa.Table(
    "otp_codes", metadata,
    sa.Column("user_id", sa.Uuid, sa.ForeignKey("users.id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("digest", sa.LargeBinary, nullable=False),  # HMAC-SHA256, never the code
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("used_at", sa.DateTime(timezone=True)),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

refresh_tokens = sa.Table(
    "refresh_tokens", metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    # Every token rotated from one login shares a family; reuse revokes the family.
    sa.Column("family_id", sa.Uuid, nullable=False, index=True),
    sa.Column("user_id", sa.Uuid, sa.ForeignKey("users.id", ondelete="CASCADE"),
              nullable=False),
    sa.Column("token_hash", sa.LargeBinary, nullable=False, unique=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("rotated_at", sa.DateTime(timezone=True)),
    sa.Column("revoked_at", sa.DateTime(timezone=True)),
)

# Fixed-window counters (OTP resends, failed logins) shared by every replica.
rate_limits = sa.Table(
    "rate_limits", metadata,
    sa.Column("scope", sa.Text, primary_key=True),
    sa.Column("key", sa.Text, primary_key=True),  # scanline.domain.users.email_key
    sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
    sa.Column("hits", sa.Integer, nullable=False),
)
