"""Secrets are read from files in both layouts OpenFaaS and Knative use."""

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from scanline.secrets import SecretMissing, Secrets, SecretUnreadable
from tests.support.as_user import IMAGE_UID, run_as


def test_file_per_secret(tmp_path: Path) -> None:
    (tmp_path / "otp-hmac-key").write_text("k1\n")
    assert Secrets(tmp_path).read("otp-hmac-key") == "k1"


def test_directory_per_secret_with_kubernetes_bookkeeping(tmp_path: Path) -> None:
    folder = tmp_path / "smtp-password"
    (folder / "..data").mkdir(parents=True)
    (folder / "smtp-password").write_text("s3cret")
    assert Secrets(tmp_path).read("smtp-password") == "s3cret"


def test_directory_with_another_key_name(tmp_path: Path) -> None:
    folder = tmp_path / "s3-secret-key"
    folder.mkdir()
    (folder / "value").write_text("v")
    assert Secrets(tmp_path).read("s3-secret-key") == "v"


def test_missing_secret_has_a_clear_error_or_the_default(tmp_path: Path) -> None:
    with pytest.raises(SecretMissing, match="smtp-password"):
        Secrets(tmp_path).read("smtp-password")
    assert Secrets(tmp_path).read("smtp-password", default="") == ""


def test_unknown_secret_names_are_refused(tmp_path: Path) -> None:
    with pytest.raises(KeyError, match="SECRET_KINDS"):
        Secrets(tmp_path).read("made-up")


def _read_as_the_images_user(directory: Path, name: str) -> str:
    def attempt() -> str:
        try:
            return Secrets(directory).read(name)
        except SecretUnreadable as exc:
            return f"SecretUnreadable {exc.detail}"

    return run_as(IMAGE_UID, attempt)


def test_an_unreadable_secret_is_a_clear_503_not_a_500() -> None:
    folder = Path(tempfile.mkdtemp(prefix="scanline-secrets-"))  # reachable by uid 10001
    try:
        folder.chmod(0o755)
        (folder / "postgres-password").write_text("s3cret")
        (folder / "postgres-password").chmod(0o600 if os.geteuid() == 0 else 0)
        answer = _read_as_the_images_user(folder, "postgres-password")
        assert answer.startswith("SecretUnreadable") and "not readable" in answer, answer
        assert SecretUnreadable("x", folder).status == 503
    finally:
        shutil.rmtree(folder)
