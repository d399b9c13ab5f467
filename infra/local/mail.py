"""Read the local mail sink from a terminal: ``python -m infra.local.mail list|show N|clear``.

``list`` numbers messages oldest first; ``show N`` prints message N (``show -1`` the newest)
with its decoded text parts; ``clear`` deletes every stored message.
"""

from __future__ import annotations

import argparse
import sys
from email import policy
from email.parser import BytesParser

from infra.local import paths
from infra.local.mailsink import summaries


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.local.mail")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="number, date, recipient and subject of every message")
    show = commands.add_parser("show", help="print one message")
    show.add_argument("number", type=int, help="1 = oldest, -1 = newest")
    show.add_argument("--raw", action="store_true", help="print the .eml file as stored")
    commands.add_parser("clear", help="delete every stored message")
    args = parser.parse_args(argv)
    directory = paths.mail_dir()
    messages = summaries(directory) if directory.is_dir() else []

    if args.command == "list":
        for number, message in enumerate(messages, start=1):
            print(f"{number:4}  {message['date']:31}  {message['to']:30}  {message['subject']}")
        print(f"{len(messages)} message(s) in {directory}", file=sys.stderr)
    elif args.command == "show":
        index = args.number - 1 if args.number > 0 else args.number
        try:
            file = directory / messages[index]["file"]
        except IndexError:
            print(f"no message {args.number} ({len(messages)} stored)", file=sys.stderr)
            return 1
        data = file.read_bytes()
        if args.raw:
            sys.stdout.write(data.decode(errors="replace"))
            return 0
        message = BytesParser(policy=policy.default).parsebytes(data)
        for header in ("From", "To", "Subject", "Date"):
            print(f"{header}: {message.get(header, '')}")
        print()
        for part in message.walk():
            if part.get_content_maintype() == "text":
                print(f"--- {part.get_content_type()}")
                print(part.get_content())  # type: ignore[attr-defined]
    elif args.command == "clear":
        for message in messages:
            (directory / message["file"]).unlink(missing_ok=True)
        print(f"deleted {len(messages)} message(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
