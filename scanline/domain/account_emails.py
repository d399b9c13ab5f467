"""The mails the account functions ask send-email to deliver."""

from __future__ import annotations

from scanline.domain import otp
from scanline.payloads import EmailRequested


def verification_code(to: str, code: str) -> EmailRequested:
    minutes = int(otp.LIFETIME.total_seconds() // 60)
    return EmailRequested(
        to=to, subject="Your Scanline verification code",
        text=f"Your Scanline verification code is {code}.\n\n"
             f"It expires in {minutes} minutes and works once. If you did not sign "
             f"up for Scanline, ignore this mail.\n")


def account_exists(to: str) -> EmailRequested:
    return EmailRequested(
        to=to, subject="Your Scanline account already exists",
        text="Someone, probably you, tried to sign up for Scanline with this address, "
             "but it already has an account.\n\nSign in with your password instead. If "
             "this was not you, ignore this mail: nothing has changed.\n")
