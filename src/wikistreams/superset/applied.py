"""Which SUPERSET_ADMIN_PASSWORD `init` last gave the admin account, as a salted slow hash.

Why: init runs on every compose `up` and on `make superset-init`. Setting the account's password
from the environment every time would undo a change made in Superset's UI; never setting it
silently kept the old password after SUPERSET_ADMIN_PASSWORD changed. With this record, init sets
the password when the environment's value differs from the one it applied last, and only then.
Standard library only (PBKDF2), kept in SUPERSET_HOME next to the metadata, owner-readable.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from dataclasses import dataclass
from pathlib import Path

from wikistreams.superset.home import superset_home

ITERATIONS = 200_000
FILE_NAME = "admin-password.applied"


def _digest(password: str, salt: bytes, iterations: int) -> str:
    return hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations).hex()


@dataclass(frozen=True)
class AppliedPassword:
    path: Path

    @classmethod
    def in_home(cls) -> AppliedPassword:
        return cls(superset_home() / FILE_NAME)

    def matches(self, username: str, password: str) -> bool:
        """True when init last applied exactly this password to this user."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            if data["username"] != username:
                return False
            expected = _digest(password, bytes.fromhex(data["salt"]), int(data["iterations"]))
            return hmac.compare_digest(expected, data["hash"])
        except (OSError, ValueError, KeyError, TypeError):
            return False  # no record, or not one we wrote: apply the environment's password

    def record(self, username: str, password: str) -> None:
        salt = os.urandom(16)
        data = {
            "username": username,
            "salt": salt.hex(),
            "iterations": ITERATIONS,
            "hash": _digest(password, salt, ITERATIONS),
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(data, out)
        os.replace(tmp, self.path)
