"""`strom relay` as a user runs it: prints its URL, answers NIP-11, keeps events, stops on
SIGTERM/SIGINT with exit code 0."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from nostr_sdk import Keys, SecretKey

from tests.unit.relay_support import RawClient, sign

STROM = [sys.executable, "-m", "strom"]


def _env(data_dir: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {**os.environ, "STROM_DATA_DIR": str(data_dir), **(extra or {})}
    env.pop("STROM_CONFIG", None)
    return env


@contextmanager
def running_relay(data_dir: Path, *args: str,
                  env: dict[str, str] | None = None) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """`strom relay --port 0 …` and the URL it printed."""
    proc = subprocess.Popen([*STROM, "relay", "--port", "0", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_env(data_dir, env),
                            cwd=data_dir.parent)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("ws://127.0.0.1:"), (url, proc.stderr.read() if proc.stderr else "")
        yield proc, url
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def _stop(proc: subprocess.Popen[str], sig: signal.Signals = signal.SIGTERM) -> str:
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=15)
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr
    return stderr


async def test_relay_starts_answers_nip11_and_stops_on_sigterm(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    event = sign(Keys.generate(), 1, "kept across runs")
    with running_relay(data_dir) as (proc, url):
        async with httpx.AsyncClient() as http:
            info = await http.get(url.replace("ws://", "http://"),
                                  headers={"Accept": "application/nostr+json"})
        assert info.status_code == 200
        assert info.json()["limitation"]["auth_required"] is False
        client = await RawClient.connect(url)
        assert (await client.publish(event))[2] is True
        await client.close()
        assert "relay stopped" in _stop(proc)
    assert (data_dir / "relay.sqlite3").exists()
    with running_relay(data_dir) as (proc, url):
        client = await RawClient.connect(url)
        assert await client.req("again", {"ids": [event["id"]]}) == [event]
        await client.close()
        _stop(proc, signal.SIGINT)


@pytest.fixture
def registered_cp(tmp_path: Path) -> Keys:
    """`strom cp add cp-1` in tmp_path/data; its keys."""
    data_dir = tmp_path / "data"
    added = subprocess.run([*STROM, "cp", "add", "cp-1", "--lat", "1", "--lon", "2"],
                           capture_output=True, text=True, env=_env(data_dir), timeout=60)
    assert added.returncode == 0, added.stderr
    nsec = tomllib.loads((data_dir / "nostr-keys.toml").read_text())["charge_points"]["cp-1"]["nsec"]
    return Keys(SecretKey.parse(nsec))


async def test_strom_write_policy_takes_charge_point_keys(tmp_path: Path,
                                                          registered_cp: Keys) -> None:
    data_dir = tmp_path / "data"
    cp = registered_cp
    with running_relay(data_dir, env={"STROM_RELAY_WRITE_POLICY": "strom"}) as (proc, url):
        client = await RawClient.connect(url)
        assert (await client.publish(sign(cp, 30333, "{}", [["d", "cp-1"]])))[2] is True
        refused = await client.publish(sign(Keys.generate(), 1, "spam"))
        assert refused[2] is False and refused[3].startswith("restricted:")
        await client.close()
        _stop(proc)


def test_port_in_use_is_one_line_exit_1(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with running_relay(data_dir) as (proc, url):
        port = url.rsplit(":", 1)[1]
        taken = subprocess.run([*STROM, "relay", "--port", port], capture_output=True, text=True,
                               env=_env(tmp_path / "other"), timeout=60)
        assert taken.returncode == 1
        assert taken.stderr.startswith("strom: error: cannot listen for the nostr relay")
        assert len(taken.stderr.strip().splitlines()) == 1
        _stop(proc)
