"""Files chargers fetch from strom or send to it: bounded writes under names strom picks, and
the one-time link tokens that grant a transfer.

A name from outside (an operator's file name, a charger's upload name) is kept for display
only; on disk every file is `<hex>.bin` in its own folder of the data dir, mode 0600, so no
name can reach another path. A link's token is random (128 bits), stored as its sha256 and
compared in constant time.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import re
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from strom.security import new_token

CHUNK = 64 * 1024
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
NAME_MAX = 100


class TooLarge(Exception):
    """More bytes than allowed arrived; nothing was kept."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the file is larger than {limit} bytes")
        self.limit = limit


class TooSlow(Exception):
    """The transfer did not finish in time; nothing was kept."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"the upload did not finish within {seconds:g} s")


@dataclass(frozen=True, slots=True)
class StoredFile:
    stored_as: str  # the name strom gave it, inside its folder
    size: int
    sha256: str


def display_name(given: str | None, fallback: str) -> str:
    """A name to show (and offer when downloading): the last path part, safe characters only."""
    base = (given or "").replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = _UNSAFE.sub("_", base).strip("._")[:NAME_MAX]
    return cleaned or fallback


def new_link_token() -> tuple[str, str]:
    """A fresh link token and the sha256 the store keeps of it."""
    token = new_token(16)
    return token, token_digest(token)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_fits(given: str, stored_sha256: str) -> bool:
    """Does `given` hash to the stored digest (compared in constant time)."""
    return hmac.compare_digest(token_digest(given), stored_sha256)


class FileFolder:
    """One folder of the data dir (0700) holding files strom names."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def file(self, stored_as: str) -> Path:
        return self.path / stored_as

    async def receive(self, chunks: AsyncIterator[bytes], *, limit: int,
                      seconds: float) -> StoredFile:
        """Write `chunks` to a new file: at most `limit` bytes within `seconds`, else the
        partial file is removed and `TooLarge` / `TooSlow` raised."""
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.path, 0o700)
        stored_as = f"{secrets.token_hex(12)}.bin"
        target = self.file(stored_as)
        digest, size = hashlib.sha256(), 0
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as handle:
                async with asyncio.timeout(seconds):
                    async for chunk in chunks:
                        size += len(chunk)
                        if size > limit:
                            raise TooLarge(limit)
                        digest.update(chunk)
                        handle.write(chunk)
        except TimeoutError:
            target.unlink(missing_ok=True)
            raise TooSlow(seconds) from None
        except BaseException:
            target.unlink(missing_ok=True)
            raise
        return StoredFile(stored_as, size, digest.hexdigest())

    def remove(self, stored_as: str) -> None:
        self.file(stored_as).unlink(missing_ok=True)
