"""`strom keys …` as a user runs it: secrets in on stdin only, never out, files 0600."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from nostr_sdk import EncryptedSecretKey, Keys

STROM = [sys.executable, "-m", "strom"]
PASSWORD = "correct horse battery"


def strom(*args: str, data_dir: Path, stdin: str = "",
          env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "STROM_DATA_DIR": str(data_dir), **(env or {})}
    for name in ("STROM_CONFIG", "STROM_KEY_PASSWORD"):
        if name not in (env or {}):
            full_env.pop(name, None)
    return subprocess.run([*STROM, *args], capture_output=True, text=True, env=full_env,
                          input=stdin, timeout=60, cwd=data_dir.parent)


def key_file(d: Path) -> dict:
    return tomllib.loads((d / "nostr-keys.toml").read_text())


@pytest.fixture
def d(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    added = strom("cp", "add", "cp-1", "--lat", "1", "--lon", "2", data_dir=data)
    assert added.returncode == 0, added.stderr
    return data


def no_secret_in(result: subprocess.CompletedProcess[str], *secrets: str) -> None:
    for secret in secrets:
        assert secret not in result.stdout and secret not in result.stderr
    assert "Traceback" not in result.stderr


def test_import_from_stdin_export_and_list(d: Path) -> None:
    mine = Keys.generate()
    nsec = mine.secret_key().to_bech32()
    refused = strom("keys", "import", "cp-1", data_dir=d, stdin=nsec + "\n")
    assert refused.returncode == 1 and "already has a key" in refused.stderr
    imported = strom("keys", "import", "cp-1", "--replace", data_dir=d, stdin=nsec + "\n")
    assert imported.returncode == 0, imported.stderr
    assert mine.public_key().to_bech32() in imported.stdout
    no_secret_in(imported, nsec, mine.secret_key().to_hex())
    assert key_file(d)["charge_points"]["cp-1"] == {"nsec": nsec}
    assert oct((d / "nostr-keys.toml").stat().st_mode & 0o777) == "0o600"

    exported = strom("keys", "export", "cp-1", data_dir=d)
    assert exported.stdout.strip() == mine.public_key().to_bech32()
    as_hex = strom("keys", "export", "cp-1", "--hex", data_dir=d)
    assert as_hex.stdout.strip() == mine.public_key().to_hex()
    listed = json.loads(strom("keys", "list", "--json", data_dir=d).stdout)
    assert listed == [{"cp_id": "cp-1", "npub": mine.public_key().to_bech32(),
                       "pubkey": mine.public_key().to_hex(), "encrypted": False}]
    table = strom("keys", "list", data_dir=d)
    no_secret_in(table, nsec)
    assert "cp-1" in table.stdout and "nsec " in table.stdout


def test_encrypt_then_the_server_needs_the_password(d: Path) -> None:
    before = key_file(d)["charge_points"]["cp-1"]["nsec"]
    npub = strom("keys", "export", "cp-1", data_dir=d).stdout.strip()
    encrypted = strom("keys", "encrypt", "cp-1", data_dir=d, stdin=f"{PASSWORD}\n{PASSWORD}\n")
    assert encrypted.returncode == 0, encrypted.stderr
    no_secret_in(encrypted, before, PASSWORD)
    entry = key_file(d)["charge_points"]["cp-1"]
    assert set(entry) == {"ncryptsec", "npub"} and entry["npub"] == npub
    secret = EncryptedSecretKey.from_bech32(entry["ncryptsec"]).decrypt(PASSWORD)
    assert secret.to_bech32() == before  # the same key, now sealed
    assert strom("keys", "export", "cp-1", data_dir=d).stdout.strip() == npub  # no password
    again = strom("keys", "encrypt", "cp-1", data_dir=d, env={"STROM_KEY_PASSWORD": PASSWORD})
    assert again.returncode == 1 and "already encrypted" in again.stderr
    short = strom("keys", "encrypt", "--all", data_dir=d, stdin="x\nx\n")
    assert short.returncode == 1  # nothing left to encrypt
    assert short.stderr.startswith("strom: error:")


def test_generate_and_import_ncryptsec(tmp_path: Path) -> None:
    d = tmp_path / "data"
    strom("cp", "add", "cp-1", "--lat", "1", "--lon", "2", data_dir=d)
    strom("cp", "add", "cp-2", "--lat", "1", "--lon", "2", data_dir=d)
    missing = strom("keys", "generate", "nope", data_dir=d)
    assert missing.returncode == 1 and "strom cp add" in missing.stderr
    taken = strom("keys", "generate", "cp-1", data_dir=d)
    assert taken.returncode == 1 and "rotate" in taken.stderr

    sealed = Keys.generate()
    ncryptsec = sealed.secret_key().encrypt(PASSWORD).to_bech32()
    wrong = strom("keys", "import", "cp-2", "--replace", data_dir=d,
                  stdin=f"{ncryptsec}\nnot the password\n")
    assert wrong.returncode == 1 and "wrong password" in wrong.stderr
    no_secret_in(wrong, ncryptsec)
    right = strom("keys", "import", "cp-2", "--replace", data_dir=d,
                  stdin=f"{ncryptsec}\n", env={"STROM_KEY_PASSWORD": PASSWORD})
    assert right.returncode == 0, right.stderr
    assert sealed.public_key().to_bech32() in right.stdout and "(encrypted)" in right.stdout
    assert key_file(d)["charge_points"]["cp-2"]["ncryptsec"] == ncryptsec

    garbage = strom("keys", "import", "cp-2", "--replace", data_dir=d, stdin="nsec1notakey\n")
    assert garbage.returncode == 1 and "not a valid nsec" in garbage.stderr
    assert "notakey" not in garbage.stderr
    empty = strom("keys", "import", "cp-2", "--replace", data_dir=d, stdin="")
    assert empty.returncode == 1 and "stdin" in empty.stderr
    assert strom("keys", "import", "cp-2", "nsec1abc", data_dir=d).returncode == 2  # not argv


def test_rotate_warns_and_keeps_encryption(d: Path) -> None:
    strom("keys", "encrypt", "cp-1", data_dir=d, env={"STROM_KEY_PASSWORD": PASSWORD})
    old = strom("keys", "export", "cp-1", data_dir=d).stdout.strip()
    declined = strom("keys", "rotate", "cp-1", data_dir=d, stdin="n\n")
    assert declined.returncode == 1 and "new nostr identity" in declined.stderr
    assert strom("keys", "export", "cp-1", data_dir=d).stdout.strip() == old
    rotated = strom("keys", "rotate", "cp-1", "--yes", data_dir=d,
                    env={"STROM_KEY_PASSWORD": PASSWORD})
    assert rotated.returncode == 0, rotated.stderr
    new = strom("keys", "export", "cp-1", data_dir=d).stdout.strip()
    assert new != old and f"{old} -> {new}" in rotated.stdout
    entry = key_file(d)["charge_points"]["cp-1"]
    assert "ncryptsec" in entry and "nsec" not in entry and entry["previous_npub"] == old
