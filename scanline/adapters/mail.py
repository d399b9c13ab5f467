"""Sending mail over SMTP, with STARTTLS and login when configured.

A connection problem or a 4xx reply is transient (``DependencyUnavailable``: the event is
retried); a 5xx reply for the message itself is permanent (``InvalidInput``: retrying
would never help, the event is dead-lettered).
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Callable
from email.message import EmailMessage

from scanline.errors import DependencyUnavailable, InvalidInput


class SmtpMailer:
    def __init__(self, host: str, port: int, *, starttls: bool, username: str,
                 password: Callable[[], str | None], timeout: float = 10.0) -> None:
        self._host, self._port, self._starttls = host, port, starttls
        self._username, self._password, self._timeout = username, password, timeout

    def _connect(self) -> smtplib.SMTP:
        smtp = smtplib.SMTP(self._host, self._port, timeout=self._timeout)
        if self._starttls:
            smtp.starttls(context=ssl.create_default_context())
        password = self._password()
        if self._username and password:
            smtp.login(self._username, password)
        return smtp

    def send(self, message: EmailMessage) -> None:
        try:
            with self._connect() as smtp:
                smtp.send_message(message)
        except smtplib.SMTPResponseException as exc:
            if 500 <= exc.smtp_code < 600:
                raise InvalidInput(f"mail server refused the message: {exc.smtp_code}") from exc
            raise DependencyUnavailable("smtp", f"mail server answered {exc.smtp_code}") from exc
        except smtplib.SMTPRecipientsRefused as exc:
            raise InvalidInput("mail server refused every recipient") from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise DependencyUnavailable("smtp", f"cannot deliver: {exc!r}") from exc

    def ping(self) -> None:
        try:
            with self._connect() as smtp:
                smtp.noop()
        except (smtplib.SMTPException, OSError) as exc:
            raise DependencyUnavailable("smtp", repr(exc)) from exc
