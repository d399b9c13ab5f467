"""Tables of the account functions (migrations 0002_accounts, 0005_accounts_under_abuse and
0009_code_requests)."""

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

# A sign-up waiting for its code: its own credential, activated only by its own code.
registrations = sa.Table(
    "registrations", metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("email", sa.Text, nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("password_hash", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("code_digest", sa.LargeBinary),  # HMAC-SHA256 of "<id>:<code>", never the code
    sa.Column("code_expires_at", sa.DateTime(timezone=True)),
    # Registered before registrations existed: verified with {"email", "otp"} alone.
    sa.Column("legacy", sa.Boolean, nullable=False, server_default=sa.false()),
)

# Password-recovery codes of verified accounts: at most one live code per user.
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

# A code asked for over HTTP, until issue-otp's handler of its ``code.requested`` event
# takes it: the event names the row, so the address never travels on the broker.
code_requests = sa.Table(
    "code_requests", metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("email", sa.Text, nullable=False),  # normalised
    sa.Column("purpose", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

# One per login. Access tokens name it (``sid``); revoking it ends them within seconds.
sessions = sa.Table(
    "sessions", metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("user_id", sa.Uuid, sa.ForeignKey("users.id", ondelete="CASCADE"),
              nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),  # never renewed
    sa.Column("revoked_at", sa.DateTime(timezone=True)),
    sa.Column("revoked_reason", sa.Text),
)

refresh_tokens = sa.Table(
    "refresh_tokens", metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    # Every token rotated from one login shares a family, which is the login's session;
    # reuse revokes it.
    sa.Column("family_id", sa.Uuid, sa.ForeignKey("sessions.id", ondelete="CASCADE"),
              nullable=False, index=True),
    sa.Column("user_id", sa.Uuid, sa.ForeignKey("users.id", ondelete="CASCADE"),
              nullable=False),
    sa.Column("token_hash", sa.LargeBinary, nullable=False, unique=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("rotated_at", sa.DateTime(timezone=True)),
    sa.Column("revoked_at", sa.DateTime(timezone=True)),
)

# Counters shared by every replica: fixed windows (scanline.domain.rate_limits.Limit) and
# progressive delays (Throttle, which also uses blocked_until).
rate_limits = sa.Table(
    "rate_limits", metadata,
    sa.Column("scope", sa.Text, primary_key=True),
    sa.Column("key", sa.Text, primary_key=True),  # a digest, never an address in clear
    sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
    sa.Column("hits", sa.BigInteger, nullable=False),  # a quota counts bytes (0007)
    sa.Column("blocked_until", sa.DateTime(timezone=True)),
)

# Security events, append-only: who (a user id, or an unknown address's key), from where,
# what happened. Never a password, a code or a token.
audit_events = sa.Table(
    "audit_events", metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("event", sa.Text, nullable=False),
    sa.Column("outcome", sa.Text, nullable=False),
    sa.Column("account", sa.Text),
    sa.Column("client", sa.Text),
    sa.Column("user_agent", sa.Text),
)
