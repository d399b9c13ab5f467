"""Writing a file the CLI owns: beside it first, then renamed over it."""

from __future__ import annotations

import os
from pathlib import Path


def replace(path: Path, data: bytes, mode: int | None = None) -> None:
    """``path`` holding ``data``. A file that was there is replaced, never written through
    (another name linked to it keeps its bytes), and never left half-written. With
    ``mode``, the new file has it from its first byte (else the umask's default)."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
                         0o666 if mode is None else mode)
    with os.fdopen(descriptor, "wb") as out:
        out.write(data)
    if mode is not None:
        os.chmod(partial, mode)  # a leftover file of that name may have had another mode
    os.replace(partial, path)
