"""``python -m scanline.callbacks``: the completion callbacks that were given up.

A callback whose receiver did not take it within ``OCR_CALLBACK_RETRY_HOURS`` (or whose host
left ``OCR_CALLBACK_HOSTS``) is dead-lettered: kept with its last error, never lost. Run
this where the ocr function runs (its environment has ``DATABASE_URL`` and the secrets),
for example ``kubectl exec deploy/ocr -- python -m scanline.callbacks list``, or locally
from the repository with the local stack's environment. ``replay JOB_ID`` makes one due
again, with a fresh retry period: the ocr function's sender delivers it within a second.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime

from scanline.adapters.db import Database
from scanline.adapters.ocr_lifecycle_repository import OcrCallbacks
from scanline.secrets import Secrets
from scanline.settings import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scanline.callbacks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="the dead-lettered callbacks, oldest first")
    listing.add_argument("--limit", type=int, default=100)
    replay = commands.add_parser("replay", help="deliver a dead-lettered callback again")
    replay.add_argument("job_id")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    db = Database(settings.database_url,
                  lambda: Secrets(settings.secrets_dir).read("postgres-password", default="")
                  or None)
    with db.connect() as conn:
        callbacks = OcrCallbacks(conn)
        if args.command == "list":
            for dead in callbacks.dead(args.limit):
                print(json.dumps({"job_id": dead.job_id, **dead.view(),
                                  "created_at": dead.created_at.isoformat()}))
            return 0
        if callbacks.replay(args.job_id, datetime.now(UTC)):
            print(f"callback of job {args.job_id} is due again")
            return 0
    print(f"no dead-lettered callback for job {args.job_id}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
