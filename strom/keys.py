"""The nostr key file (`nostr-keys.toml`): one secret key per charge point, operator npubs.

The file holds secrets, so it is written with mode 0600 and its contents never reach a log.
A relative `[nostr] keys_file` is taken inside the data dir.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w
from nostr_sdk import EncryptedSecretKey, Keys, PublicKey, SecretKey

from strom.errors import UserError
from strom.security import write_secret_file


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
    write_secret_file(path, tomli_w.dumps(data))


def ensure_cp_key(path: Path, cp_id: str) -> str:
    """Create a key for `cp_id` unless one exists; returns its npub."""
    data = _load(path)
    entry = data.setdefault("charge_points", {}).get(cp_id)
    if entry:
        return load_identity(path, cp_id).npub
    keys = Keys.generate()
    data["charge_points"][cp_id] = {"nsec": keys.secret_key().to_bech32()}
    _save(path, data)
    return keys.public_key().to_bech32()


def remove_cp_key(path: Path, cp_id: str) -> None:
    data = _load(path)
    if cp_id in data.get("charge_points", {}):
        del data["charge_points"][cp_id]
        _save(path, data)


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
        for cp_id in _load(self.path).get("charge_points", {}):
            try:
                pubkeys[cp_id] = load_identity(self.path, cp_id).pubkey_hex
            except UserError:
                continue
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
