"""A user of the OCR path over HTTP, as the e2e tests and the benchmark drive it.

Sign-up goes through the real account functions (register → the OTP mail in the sink →
verify-otp → token); the OCR calls are the documented ``/function/ocr-jobs`` contract.
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass
from email import policy
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import requests

from tests.support import clients

PASSWORD = "correct horse battery staple 42"
OTP = re.compile(r"verification code is (\d{6})")


def _otp_from_sink(mail_dir: Path, address: str, timeout: float = 20) -> str:
    parser = BytesParser(policy=policy.default)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in mail_dir.glob("*.eml"):
            message = parser.parsebytes(path.read_bytes())
            if address in str(message["To"]).lower():
                match = OTP.search(message.get_body(("plain",)).get_content())
                if match:
                    return match.group(1)
        time.sleep(0.1)
    raise AssertionError(f"no verification code mailed to {address} within {timeout} s")


@dataclass
class OcrClient:
    gateway: str
    token: str
    email: str

    @classmethod
    def sign_up(cls, gateway: str, mail_dir: Path, prefix: str = "ocr") -> OcrClient:
        email = f"{prefix}-{uuid.uuid4().hex[:12]}@example.com"
        fn = f"{gateway}/function"
        person = clients.session()  # one person, from an address of their own
        r = person.post(f"{fn}/register", timeout=30,
                        json={"name": "OCR tester", "email": email, "password": PASSWORD})
        assert r.status_code == 202, r.text
        r = person.post(f"{fn}/verify-otp", timeout=30,
                        json={"email": email, "otp": _otp_from_sink(mail_dir, email),
                              "password": PASSWORD})
        assert r.status_code == 200, r.text
        r = person.post(f"{fn}/token", timeout=30, json={
            "grant_type": "password", "username": email, "password": PASSWORD})
        assert r.status_code == 200, r.text
        return cls(gateway, r.json()["access_token"], email)

    @property
    def url(self) -> str:
        return f"{self.gateway}/function/ocr-jobs"

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def upload(self, data: bytes, filename: str = "scan.png", media_type: str = "image/png",
               *, key: str | None = None, **options: str) -> requests.Response:
        return requests.post(self.url, headers=self._keyed(key), timeout=60, data=options,
                             files={"file": (filename, data, media_type)})

    def presign(self, media_type: str, size: int, *, key: str | None = None,
                **options: Any) -> requests.Response:
        return requests.post(self.url, headers=self._keyed(key), timeout=30,
                             json={"content_type": media_type, "size": size, **options})

    @staticmethod
    def post_upload(presigned: dict[str, Any], data: bytes) -> requests.Response:
        """The browser-based POST to S3 the presign answer describes (the file last)."""
        return requests.post(presigned["upload_url"], data=presigned["upload_fields"],
                             files={"file": ("document", data)}, timeout=60)

    def _keyed(self, key: str | None) -> dict[str, str]:
        return {**self.auth, **({"Idempotency-Key": key} if key else {})}

    def delete(self, job_id: str) -> requests.Response:
        return requests.delete(f"{self.url}/{job_id}", headers=self.auth, timeout=30)

    def list(self, **params: Any) -> requests.Response:
        return requests.get(self.url, headers=self.auth, params=params, timeout=30)

    def submit(self, job_id: str) -> requests.Response:
        return requests.post(f"{self.url}/{job_id}/submit", headers=self.auth, timeout=30)

    def get(self, job_id: str, wait: int = 0) -> requests.Response:
        return requests.get(f"{self.url}/{job_id}", headers=self.auth,
                            params={"wait": wait} if wait else None, timeout=wait + 30)

    def wait_done(self, job_id: str, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            r = self.get(job_id, wait=min(30, max(1, int(deadline - time.monotonic()))))
            if r.status_code == 429:  # this user already waits for as many jobs as allowed
                time.sleep(float(r.headers.get("Retry-After", "1")))
                continue
            assert r.status_code == 200, r.text
            job = r.json()
            if job["status"] in ("done", "failed") or time.monotonic() > deadline:
                return job
