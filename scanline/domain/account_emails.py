"""The mails the account functions ask send-email to deliver."""

from __future__ import annotations

from scanline.domain import otp
from scanline.payloads import EmailRequested

_MINUTES = int(otp.LIFETIME.total_seconds() // 60)


def verification_code(to: str, code: str) -> EmailRequested:
    return EmailRequested(
        to=to, subject="Your Scanline verification code",
        text=f"Your Scanline verification code is {code}.\n\n"
             f"Enter it with the password you chose when you signed up. It expires in "
             f"{_MINUTES} minutes and works once. If you did not sign up for Scanline, ignore "
             f"this mail: nobody can use your address without this code.\n")


def recovery_code(to: str, code: str) -> EmailRequested:
    return EmailRequested(
        to=to, subject="Your Scanline password reset code",
        text=f"Your Scanline password reset code is {code}.\n\n"
             f"Enter it with the new password you want. It expires in {_MINUTES} minutes and "
             f"works once; every session of your account ends when the password changes. If "
             f"you did not ask for it, ignore this mail: your password has not changed.\n")


def account_exists(to: str) -> EmailRequested:
    return EmailRequested(
        to=to, subject="Your Scanline account already exists",
        text="Someone, probably you, tried to sign up for Scanline with this address, "
             "but it already has an account.\n\nSign in with your password instead, or reset "
             "it if you forgot it. If this was not you, ignore this mail: nothing has "
             "changed.\n")
