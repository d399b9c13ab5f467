"""PostgreSQL notifications (``LISTEN``/``NOTIFY``) received on a connection of their own.

pg8000 reads a notification only while it reads the answer to a query, and has no call
that waits for one. So the listener makes the connection's socket itself, waits for it to
become readable, then runs an empty query, which makes pg8000 read what arrived. A
notification that pg8000 happened to buffer behind a query's answer is read at the next
wake-up, at most one ``wait`` timeout later.
"""

from __future__ import annotations

import contextlib
import select
import socket
from typing import Any

from scanline.errors import DependencyUnavailable


class Listener:
    def __init__(self, connect_args: dict[str, Any], channel: str, timeout: float) -> None:
        if not channel.isidentifier():
            raise ValueError(f"{channel!r} is not a plain PostgreSQL identifier")
        self._args, self._channel, self._timeout = dict(connect_args), channel, timeout
        self._socket: socket.socket | None = None
        self._connection: Any = None

    @property
    def listening(self) -> bool:
        return self._connection is not None

    def open(self) -> None:
        """Connect and ``LISTEN``; what was notified before this returned is not seen."""
        import pg8000.dbapi

        self.close()
        args = dict(self._args)
        try:
            if "unix_sock" in args:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(self._timeout)
                sock.connect(args.pop("unix_sock"))
            else:
                sock = socket.create_connection(
                    (args.pop("host", "localhost"), int(args.pop("port", 5432))), self._timeout)
            self._socket = sock
            connection = pg8000.dbapi.connect(sock=sock, timeout=self._timeout, **args)
            connection.autocommit = True
            connection.cursor().execute(f"LISTEN {self._channel}")
            self._connection = connection
        except (OSError, pg8000.dbapi.Error) as exc:
            self.close()
            raise DependencyUnavailable("postgresql", f"cannot listen: {exc}") from exc

    def wait(self, timeout: float) -> list[str]:
        """The payloads notified since the last call, waiting up to ``timeout`` seconds for
        the first one."""
        import pg8000.dbapi

        if self._connection is None or self._socket is None:
            raise DependencyUnavailable("postgresql", "not listening")
        try:
            select.select([self._socket], [], [], max(0.0, timeout))
            self._connection.cursor().execute("SELECT 1")
        except (OSError, ValueError, pg8000.dbapi.Error) as exc:
            self.close()
            raise DependencyUnavailable("postgresql", f"listening failed: {exc}") from exc
        received = self._connection.notifications
        payloads = [payload for _, channel, payload in received if channel == self._channel]
        received.clear()
        return payloads

    def close(self) -> None:
        connection, sock = self._connection, self._socket
        self._connection = self._socket = None
        if connection is not None:
            with contextlib.suppress(Exception):  # it is being dropped anyway
                connection.close()
        if sock is not None:
            sock.close()
