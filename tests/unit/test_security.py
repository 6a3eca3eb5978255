from __future__ import annotations

import stat
from pathlib import Path

from strom.security import hash_password, read_or_create_secret, verify_password


def test_password_hash_is_salted_and_verifies() -> None:
    a = hash_password("correct horse battery staple")
    b = hash_password("correct horse battery staple")
    assert a != b
    assert "correct horse" not in a
    assert verify_password("correct horse battery staple", a)
    assert not verify_password("wrong", a)
    assert not verify_password("x", "garbage")


def test_secret_file_is_private(tmp_path: Path) -> None:
    path = tmp_path / "admin.token"
    token = read_or_create_secret(path)
    assert len(token) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_or_create_secret(path) == token
