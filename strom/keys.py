"""The nostr key file (`nostr-keys.toml`): one secret key per charge point, operator npubs.

The file holds secrets, so it is written with mode 0600 (atomically: a crash leaves the old
file or the new one, never half of one) and its contents never reach a log. A relative
`[nostr] keys_file` is taken inside the data dir.

A key is kept as `nsec` or encrypted at rest as NIP-49 `ncryptsec`; next to an ncryptsec the
file keeps its public `npub`, so the charger's identity is known without the password.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import tempfile
import threading
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w
from nostr_sdk import EncryptedSecretKey, Keys, PublicKey, SecretKey

from strom.errors import UserError

MIN_KEY_PASSWORD = 8

ROTATE_WARNING = (
    "Rotating gives {cp_id} a new nostr identity. Followers of the old npub stop seeing its "
    "status and profile; its lightning address and NIP-05 name point to the new key; zap "
    "receipts are signed by the new key, so zaps to the old npub are no longer answered; "
    "DMs sent to the old npub are not read any more. Sessions and payments are not affected. "
    "Publish the new npub where users find the charger."
)

_write_lock = threading.Lock()


class KeyConflict(UserError):
    """The key exists already, or is already encrypted."""


class KeyMissing(UserError):
    """There is no key for this charge point."""


@dataclass(frozen=True, slots=True)
class Identity:
    cp_id: str
    keys: Keys

    @property
    def npub(self) -> str:
        return self.keys.public_key().to_bech32()

    @property
    def pubkey_hex(self) -> str:
        return self.keys.public_key().to_hex()

    def __repr__(self) -> str:  # never show the secret
        return f"Identity({self.cp_id!r}, {self.npub})"


def keys_path(data_dir: Path, keys_file: str) -> Path:
    path = Path(keys_file).expanduser()
    return path if path.is_absolute() else data_dir / path


def _load(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: not valid TOML: {exc}") from None


def _save(path: Path, data: dict[str, Any]) -> None:
    """Replace the file atomically with a 0600 temporary file in the same directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # mode 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(tomli_w.dumps(data))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def _editing(path: Path) -> Iterator[dict[str, Any]]:
    """Read, let the caller change, save: one writer at a time, across threads and processes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lock_path = path.with_name(path.name + ".lock")
    with _write_lock, open(os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600), "r+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        data = _load(path)
        yield data
        _save(path, data)


def ensure_cp_key(path: Path, cp_id: str) -> str:
    """Create a key for `cp_id` unless one exists; returns its npub."""
    if not _load(path).get("charge_points", {}).get(cp_id):
        with _editing(path) as data:
            entries = data.setdefault("charge_points", {})
            if not entries.get(cp_id):
                entries[cp_id] = {"nsec": Keys.generate().secret_key().to_bech32()}
    return key_info(path, cp_id).npub or load_identity(path, cp_id).npub


def remove_cp_key(path: Path, cp_id: str) -> None:
    with _editing(path) as data:
        data.get("charge_points", {}).pop(cp_id, None)


def load_identity(path: Path, cp_id: str, password: str | None = None) -> Identity:
    """The identity of `cp_id`; an ncryptsec needs `password` or `$STROM_KEY_PASSWORD`."""
    entry = _load(path).get("charge_points", {}).get(cp_id)
    if not entry:
        raise UserError(f"{path}: no key for charge point {cp_id!r} ([charge_points.{cp_id}] nsec)")
    try:
        if "nsec" in entry:
            return Identity(cp_id, Keys(SecretKey.parse(entry["nsec"])))
        if "ncryptsec" in entry:
            password = password or os.environ.get("STROM_KEY_PASSWORD")
            if not password:
                raise UserError(f"{path}: [charge_points.{cp_id}] is encrypted; "
                                "set STROM_KEY_PASSWORD")
            secret = EncryptedSecretKey.from_bech32(entry["ncryptsec"]).decrypt(password)
            return Identity(cp_id, Keys(secret))
    except UserError:
        raise
    except Exception:
        # The library's message may echo the input; the key itself must not reach a user.
        raise UserError(f"{path}: [charge_points.{cp_id}] key is not valid (or wrong password)") from None
    raise UserError(f"{path}: [charge_points.{cp_id}] needs nsec or ncryptsec")


def operator_npubs(path: Path) -> list[str]:
    return list(_load(path).get("operator", {}).get("npubs", []))


class KeyRing:
    """Public keys of the charge points, re-read when the key file changes.

    Only public keys leave this class; an ncryptsec entry shows its key only when
    `$STROM_KEY_PASSWORD` opens it.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._mtime: float | None = None
        self._pubkeys: dict[str, str] = {}

    def _refresh(self) -> None:
        mtime = self.path.stat().st_mtime if self.path.exists() else None
        if mtime == self._mtime:
            return
        pubkeys: dict[str, str] = {}
        for info in key_infos(self.path):
            if info.npub:
                pubkeys[info.cp_id] = PublicKey.parse(info.npub).to_hex()
        self._pubkeys, self._mtime = pubkeys, mtime

    def pubkey_hex(self, cp_id: str) -> str | None:
        self._refresh()
        return self._pubkeys.get(cp_id)

    def npub(self, cp_id: str) -> str | None:
        pubkey = self.pubkey_hex(cp_id)
        return PublicKey.parse(pubkey).to_bech32() if pubkey else None

    def all_pubkeys(self) -> dict[str, str]:
        self._refresh()
        return dict(self._pubkeys)


class PubkeySet:
    """The charge points' hex pubkeys as a ready set, for callers that ask on every event (the
    relay's write policy and rate limit): the key file is read in a thread every `every`
    seconds rather than on the loop each time."""

    def __init__(self, ring: KeyRing, every: float = 10.0) -> None:
        self._ring = ring
        self._every = every
        self.pubkeys: frozenset[str] = frozenset()

    def __call__(self) -> frozenset[str]:
        return self.pubkeys

    async def load(self) -> None:
        self.pubkeys = frozenset((await asyncio.to_thread(self._ring.all_pubkeys)).values())

    async def refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(self._every)
            await self.load()


# --- key management (`strom keys`, `/api/v1/keys`) ---------------------------------------


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """The public side of one key entry; `npub` is None when nothing can open it."""

    cp_id: str
    npub: str | None
    encrypted: bool

    @property
    def pubkey_hex(self) -> str | None:
        return PublicKey.parse(self.npub).to_hex() if self.npub else None


def check_password(password: str) -> str:
    if len(password) < MIN_KEY_PASSWORD:
        raise UserError(f"the key password needs at least {MIN_KEY_PASSWORD} characters")
    return password


def _entry_info(path: Path, cp_id: str, entry: dict[str, Any]) -> KeyInfo:
    encrypted = "ncryptsec" in entry and "nsec" not in entry
    npub = entry.get("npub") if encrypted else None
    if npub:
        try:
            PublicKey.parse(npub)
        except Exception:
            npub = None
    if npub is None:
        try:
            npub = load_identity(path, cp_id).npub
        except UserError:
            npub = None
    return KeyInfo(cp_id, npub, encrypted)


def key_infos(path: Path) -> list[KeyInfo]:
    """Every charge point key in the file, public parts only, sorted by charge point id."""
    entries = _load(path).get("charge_points", {})
    return [_entry_info(path, cp_id, entry) for cp_id, entry in sorted(entries.items())
            if isinstance(entry, dict)]


def key_info(path: Path, cp_id: str) -> KeyInfo:
    entry = _load(path).get("charge_points", {}).get(cp_id)
    if not isinstance(entry, dict):
        raise KeyMissing(f"no key for charge point {cp_id!r}")
    return _entry_info(path, cp_id, entry)


def _stored(keys: Keys, password: str | None) -> dict[str, str]:
    if password is None:
        return {"nsec": keys.secret_key().to_bech32()}
    encrypted = keys.secret_key().encrypt(check_password(password))
    return {"ncryptsec": encrypted.to_bech32(), "npub": keys.public_key().to_bech32()}


def _put(path: Path, cp_id: str, entry: dict[str, str], *, replace: bool) -> None:
    with _editing(path) as data:
        entries = data.setdefault("charge_points", {})
        if cp_id in entries and not replace:
            raise KeyConflict(f"{cp_id} already has a key; rotate it to replace it")
        entries[cp_id] = entry


def generate_key(path: Path, cp_id: str, *, password: str | None = None,
                 replace: bool = False) -> str:
    """A fresh key for `cp_id` (encrypted at rest when `password` is given); returns its npub."""
    keys = Keys.generate()
    _put(path, cp_id, _stored(keys, password), replace=replace)
    return keys.public_key().to_bech32()


def parse_secret(text: str, password: str | None = None) -> Keys:
    """Keys from an nsec, a hex secret, or an ncryptsec opened with `password`.

    Errors never repeat the input: it may be most of a secret key.
    """
    text = text.strip()
    if text.startswith("ncryptsec1"):
        if not password:
            raise UserError("an ncryptsec needs its password")
        try:
            return Keys(EncryptedSecretKey.from_bech32(text).decrypt(password))
        except Exception:
            raise UserError("not a valid ncryptsec, or the wrong password") from None
    try:
        return Keys(SecretKey.parse(text))
    except Exception:
        raise UserError("not a valid nsec (expected nsec1… or 64 hex digits)") from None


def import_key(path: Path, cp_id: str, secret: str, *, password: str | None = None,
               encrypt: bool = False, replace: bool = False) -> str:
    """Store an existing key for `cp_id`; returns its npub.

    An ncryptsec is kept as given (its password proves it opens); an nsec is kept as nsec, or
    encrypted with `password` when `encrypt` is set.
    """
    keys = parse_secret(secret, password)
    if secret.strip().startswith("ncryptsec1"):
        entry = {"ncryptsec": secret.strip(), "npub": keys.public_key().to_bech32()}
    else:
        entry = _stored(keys, password if encrypt else None)
    _put(path, cp_id, entry, replace=replace)
    return keys.public_key().to_bech32()


def encrypt_key(path: Path, cp_id: str, password: str) -> str:
    """Replace the nsec of `cp_id` with an ncryptsec (NIP-49); returns its npub."""
    check_password(password)
    with _editing(path) as data:
        entry = data.get("charge_points", {}).get(cp_id)
        if not isinstance(entry, dict):
            raise KeyMissing(f"no key for charge point {cp_id!r}")
        if "nsec" not in entry:
            raise KeyConflict(f"the key of {cp_id} is already encrypted")
        keys = parse_secret(entry["nsec"])
        data["charge_points"][cp_id] = _stored(keys, password)
    return keys.public_key().to_bech32()


@dataclass(frozen=True, slots=True)
class Rotation:
    cp_id: str
    old_npub: str | None
    new_npub: str
    encrypted: bool

    @property
    def warning(self) -> str:
        return ROTATE_WARNING.format(cp_id=self.cp_id)


def rotate_key(path: Path, cp_id: str, *, password: str | None = None) -> Rotation:
    """A new key for `cp_id`; an encrypted key stays encrypted, so it needs `password`.

    The old npub is kept as `previous_npub`, so the bots can tell followers where it went.
    """
    old = key_info(path, cp_id)
    if old.encrypted and password is None:
        raise UserError(f"the key of {cp_id} is encrypted; give the password for the new one")
    keys = Keys.generate()
    entry = _stored(keys, password if old.encrypted or password else None)
    if old.npub:
        entry["previous_npub"] = old.npub
    _put(path, cp_id, entry, replace=True)
    return Rotation(cp_id, old.npub, keys.public_key().to_bech32(), "ncryptsec" in entry)
