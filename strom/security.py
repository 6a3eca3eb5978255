"""Secrets: password hashes, tokens and constant-time comparisons.

Passwords are stored as salted scrypt hashes, never in clear; every comparison of a secret
uses `hmac.compare_digest` so that timing reveals nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from pathlib import Path

_N, _R, _P = 2**14, 8, 1


def hash_password(password: str) -> str:
    """A self-describing salted scrypt hash: `scrypt$N$r$p$salt$hash` (base64)."""
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    b64 = base64.b64encode
    return f"scrypt${_N}${_R}${_P}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        actual = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt),
                                n=int(n), r=int(r), p=int(p), dklen=len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


def token_matches(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def new_token(nbytes: int = 16) -> str:
    """A URL-safe random secret; 16 bytes = 128 bits."""
    return secrets.token_urlsafe(nbytes)


def write_secret_file(path: Path, content: str | bytes) -> None:
    """Write a secret readable by its owner only (mode 0600), created so from the start."""
    data = content.encode("utf-8") if isinstance(content, str) else content
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(path, 0o600)


def create_private_file(path: Path) -> None:
    """Make sure `path` exists with mode 0600 (umask or not), before a library opens it.

    SQLite creates its `-wal` and `-shm` files with the mode of the database file, so a
    database created this way keeps all three private.
    """
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    os.chmod(path, 0o600)


def read_or_create_secret(path: Path, nbytes: int = 32) -> str:
    """The secret stored in `path`, created (mode 0600) on first use."""
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    token = new_token(nbytes)
    write_secret_file(path, token + "\n")
    return token
