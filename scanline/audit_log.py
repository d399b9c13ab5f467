"""``python -m scanline.audit_log``: read the security log (the ``audit_events`` table).

Run it where a function runs (its environment has ``DATABASE_URL`` and the secrets), for
example ``kubectl exec deploy/token -- python -m scanline.audit_log --email a@b.example``,
or locally from the repository with the local stack's environment (docs/security.md).
One JSON object per line, newest first. An address is looked up both as its account's id
and as the address's key (events about an address without an account carry the key).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from scanline.adapters.accounts_tables import audit_events, users
from scanline.adapters.db import Database
from scanline.domain.users import email_key, normalise_email
from scanline.secrets import Secrets
from scanline.settings import Settings

_SPAN = re.compile(r"^(\d+)([mhd])$")


def since(text: str) -> datetime:
    match = _SPAN.match(text)
    if not match:
        raise argparse.ArgumentTypeError("a span like 30m, 12h or 7d")
    unit = {"m": "minutes", "h": "hours", "d": "days"}[match.group(2)]
    return datetime.now(UTC) - timedelta(**{unit: int(match.group(1))})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scanline.audit_log", description=__doc__)
    who = parser.add_mutually_exclusive_group()
    who.add_argument("--email", help="an address (its account and the address itself)")
    who.add_argument("--account", help="a user id")
    parser.add_argument("--client", help="a client address")
    parser.add_argument("--event", help="one event name, e.g. login-failed")
    parser.add_argument("--since", type=since, default=since("1d"), help="default 1d")
    parser.add_argument("--limit", type=int, default=200)
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    db = Database(settings.database_url,
                  lambda: Secrets(settings.secrets_dir).read("postgres-password", default="")
                  or None)
    query = sa.select(audit_events).where(audit_events.c.at >= args.since)
    with db.connect() as conn:
        if args.email:
            email = normalise_email(args.email)
            user_id = conn.execute(sa.select(users.c.id).where(
                sa.func.lower(users.c.email) == email)).scalar_one_or_none()
            accounts = [email_key(email), *([str(user_id)] if user_id else [])]
            query = query.where(audit_events.c.account.in_(accounts))
        elif args.account:
            query = query.where(audit_events.c.account == args.account)
        if args.client:
            query = query.where(audit_events.c.client == args.client)
        if args.event:
            query = query.where(audit_events.c.event == args.event)
        rows = conn.execute(query.order_by(audit_events.c.at.desc()).limit(args.limit)).all()
    for row in rows:
        print(json.dumps({"at": row.at.isoformat(), "event": row.event, "outcome": row.outcome,
                          "account": row.account, "client": row.client,
                          "user_agent": row.user_agent}))
    db.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
