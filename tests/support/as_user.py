"""Run a check as another user, as a container's non-root user would (root reads any file,
so a test of file permissions needs a process that is not root)."""

from __future__ import annotations

import os
from collections.abc import Callable

IMAGE_UID = 10001  # the function images' user


def run_as(uid: int, check: Callable[[], str]) -> str:
    """``check()`` in a forked child running as ``uid`` (as this process when not root)."""
    if os.geteuid() != 0:
        return check()
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover (the parent asserts what the child wrote)
        os.close(reader)
        try:
            os.setgid(uid)
            os.setuid(uid)
            answer = check()
        except Exception as exc:
            answer = f"{type(exc).__name__}: {exc}"
        os.write(writer, answer.encode())
        os._exit(0)
    os.close(writer)
    with os.fdopen(reader) as pipe:
        answer = pipe.read()
    os.waitpid(child, 0)
    return answer
