"""Accounts that withstand abuse: registrations, sessions, throttles, the audit log.

- ``registrations``: a sign-up is a pending registration with its own password hash and
  its own code; verifying activates exactly that registration's credential, so whoever
  registers an address first gains nothing. Unverified ``users`` rows (the old model) move
  here as ``legacy`` registrations, keeping their id (their code's digest is bound to it)
  and the ``{"email", "otp"}`` verification they were promised.
- ``sessions``: one per login (the refresh-token family), with an absolute expiry and a
  revocation time that every token verifier polls.
- ``rate_limits.blocked_until``: progressive delays (login throttling per account and
  client address).
- ``audit_events``: every security event, never a secret.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _when(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "registrations",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("email", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("password_hash", sa.Text, nullable=False),
        _when("created_at", nullable=False),
        _when("expires_at", nullable=False),
        sa.Column("code_digest", sa.LargeBinary),
        _when("code_expires_at"),
        sa.Column("legacy", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.create_index("registrations_email", "registrations", [sa.text("lower(email)")])
    op.create_index("registrations_expires_at", "registrations", ["expires_at"])
    # Unverified accounts of the old model become registrations that keep their id, so the
    # codes already mailed to them (HMAC-bound to that id) still verify.
    op.execute("""
        INSERT INTO registrations (id, email, name, password_hash, created_at, expires_at,
                                   code_digest, code_expires_at, legacy)
        SELECT u.id, u.email, u.name, u.password_hash, u.created_at,
               greatest(u.created_at, now()) + interval '24 hours',
               c.digest, c.expires_at, true
        FROM users u LEFT JOIN otp_codes c ON c.user_id = u.id AND c.used_at IS NULL
        WHERE u.verified_at IS NULL""")
    op.execute("DELETE FROM users WHERE verified_at IS NULL")  # cascades their codes
    op.create_table(
        "sessions",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("user_id", sa.Uuid, sa.ForeignKey("users.id", ondelete="CASCADE"),
                  nullable=False),
        _when("created_at", nullable=False),
        _when("expires_at", nullable=False),
        _when("revoked_at"),
        sa.Column("revoked_reason", sa.Text),
    )
    op.create_index("sessions_revoked_at", "sessions", ["revoked_at"])
    op.create_index("sessions_user_id", "sessions", ["user_id"])
    # Every refresh-token family of the old model was a login: it becomes a session.
    op.execute("""
        INSERT INTO sessions (id, user_id, created_at, expires_at, revoked_at, revoked_reason)
        SELECT family_id, user_id, min(created_at), min(created_at) + interval '30 days',
               max(revoked_at), CASE WHEN max(revoked_at) IS NULL THEN NULL
                                     ELSE 'revoked before sessions existed' END
        FROM refresh_tokens GROUP BY family_id, user_id""")
    op.create_foreign_key("refresh_tokens_session", "refresh_tokens", "sessions",
                          ["family_id"], ["id"], ondelete="CASCADE")
    op.add_column("rate_limits", _when("blocked_until"))
    op.create_table(
        "audit_events",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        _when("at", nullable=False),
        sa.Column("event", sa.Text, nullable=False),
        sa.Column("outcome", sa.Text, nullable=False),
        # A user id, or for an address with no account the address's key (never clear text).
        sa.Column("account", sa.Text),
        sa.Column("client", sa.Text),
        sa.Column("user_agent", sa.Text),
    )
    op.create_index("audit_events_at", "audit_events", ["at"])
    op.create_index("audit_events_account_at", "audit_events", ["account", "at"])


def downgrade() -> None:
    op.drop_table("audit_events")
    op.drop_column("rate_limits", "blocked_until")
    op.drop_constraint("refresh_tokens_session", "refresh_tokens")
    op.drop_table("sessions")
    op.drop_table("registrations")
