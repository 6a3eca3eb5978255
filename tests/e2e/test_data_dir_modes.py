"""The data dir holds every session token, withdraw k1 and key: whatever mode it had before,
`strom run`, `strom relay` and the store commands leave it 0700 with every file in it 0600."""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from nostr_sdk import Keys

from strom.errors import UserError
from strom.paths import ensure_data_dir
from tests.e2e.processes import free_port, start, stop, strom, wait_running
from tests.e2e.test_relay_cli import running_relay
from tests.unit.relay_support import RawClient, sign


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@contextmanager
def _umask(mask: int) -> Iterator[None]:
    """Child processes inherit the umask: 022, the usual default, makes files 0644."""
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def _open_data_dir(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    (data / "notes.txt").write_text("left here by hand\n")
    (data / "notes.txt").chmod(0o644)
    return data


def _assert_private(data: Path, *names: str) -> None:
    assert _mode(data) == 0o700
    for name in names:
        assert _mode(data / name) == 0o600, (name, oct(_mode(data / name)))
    for entry in data.iterdir():
        assert not _mode(entry) & 0o077, (entry.name, oct(_mode(entry)))


def test_strom_run_makes_an_open_data_dir_private(tmp_path: Path) -> None:
    data = _open_data_dir(tmp_path)
    config = tmp_path / "strom.toml"
    config.write_text(f"[http]\nport = {free_port()}\n[ocpp]\nport = {free_port()}\n"
                      "[relay]\nport = 0\n")
    with _umask(0o022):
        server = start("run", "--config", str(config), data_dir=data, log=tmp_path / "run.log")
    try:
        base = wait_running(data, server)
        token = (data / "admin.token").read_text().strip()
        added = httpx.post(f"{base}/api/v1/charge-points", timeout=10,
                           headers={"Authorization": f"Bearer {token}"},
                           json={"id": "cp-1", "lat": 1.0, "lon": 2.0})
        assert added.status_code in (200, 201), added.text
        _assert_private(data, "notes.txt", "strom.sqlite3", "strom.sqlite3-wal",
                        "strom.sqlite3-shm", "relay.sqlite3", "relay.sqlite3-wal",
                        "relay.sqlite3-shm", "admin.token")
    finally:
        assert stop(server) == 0


def test_strom_relay_makes_an_open_data_dir_private(tmp_path: Path) -> None:
    data = _open_data_dir(tmp_path)
    with _umask(0o022), running_relay(data) as (proc, url):
        async def publish() -> None:
            client = await RawClient.connect(url)
            assert (await client.publish(sign(Keys.generate(), 1, "hello")))[2] is True
            await client.close()

        asyncio.run(publish())
        _assert_private(data, "notes.txt", "relay.sqlite3", "relay.sqlite3-wal",
                        "relay.sqlite3-shm")
        proc.terminate()
        proc.wait(15)


def test_store_commands_make_an_open_data_dir_private(tmp_path: Path) -> None:
    data = _open_data_dir(tmp_path)
    with _umask(0o022):
        added = strom("cp", "add", "cp-1", "--lat", "1", "--lon", "2", data_dir=data)
    assert added.returncode == 0, added.stderr
    _assert_private(data, "notes.txt", "strom.sqlite3", "nostr-keys.toml")


def test_a_data_dir_strom_cannot_make_private_stops_it_with_one_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = _open_data_dir(tmp_path)

    def not_owner(path: object, mode: int) -> None:
        raise PermissionError(1, "Operation not permitted")

    # Only root could hand the test a file of another user; chmod answers what it would.
    monkeypatch.setattr(os, "chmod", not_owner)
    with pytest.raises(UserError) as refused:
        ensure_data_dir(data)
    message = str(refused.value)
    assert "\n" not in message and str(data) in message and "chmod" in message
    assert "Operation not permitted" in message
