"""docker-compose mounts each secret with its host file's mode: the copies it mounts are
readable by the images' user, and only by the owner on the host."""

from __future__ import annotations

import shutil
import stat
import tempfile
from pathlib import Path

from infra.local.secretgen import ensure_secrets, export_for_compose
from tests.support.as_user import IMAGE_UID, run_as


def test_compose_copies_are_readable_by_the_images_user_and_private_on_the_host() -> None:
    root = Path(tempfile.mkdtemp(prefix="scanline-compose-"))  # reachable by uid 10001
    try:
        source, target = root / "secrets", root / "compose-secrets"
        names = ["postgres-password", "rabbitmq-password"]
        ensure_secrets(names, source)
        assert stat.S_IMODE((source / names[0]).stat().st_mode) == 0o600
        root.chmod(0o755)
        export_for_compose(names, source, target)
        assert stat.S_IMODE(target.stat().st_mode) == 0o700
        for name in names:
            copy = target / name
            assert stat.S_IMODE(copy.stat().st_mode) == 0o444
            assert copy.read_text() == (source / name).read_text()
        # Inside a container the folder is not in the way (compose mounts each file):
        # what matters is that the file itself is readable by uid 10001.
        target.chmod(0o755)
        assert run_as(IMAGE_UID, lambda: (target / names[0]).read_text()) == \
            (source / names[0]).read_text()
        target.chmod(0o700)
        # Again, after a rotation: the copy follows the source.
        (source / names[0]).write_text("rotated")
        export_for_compose(names, source, target)
        assert (target / names[0]).read_text() == "rotated"
    finally:
        shutil.rmtree(root)
