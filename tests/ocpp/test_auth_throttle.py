"""Wrong OCPP passwords: each one used to cost a full scrypt with no throttle (200 tries = 10 s
of CPU). Now guesses back off per charger id and per address, refused without hashing while
throttled, and the real charger gets in once the backoff window has passed."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

import strom.ocpp.central_system as central_system
from strom.ocpp.auth_throttle import AuthThrottle
from strom.security import hash_password
from strom.store.db import Database
from tests.ocpp.conftest import PASSWORD, Ocpp, start_ocpp
from tests.ocpp.test_connections import BOOT, basic

MAX_BACKOFF = 1.0


@pytest.fixture
async def guarded(db: Database) -> AsyncIterator[Ocpp]:
    server, bus = await start_ocpp(db, auth_failure_budget=3,
                                   auth_backoff_max_seconds=MAX_BACKOFF)
    await server.charge_points.add("cp-pw2", name="second", lat=1.0, lon=2.0,
                                   password_hash=hash_password(PASSWORD))
    yield server
    await server.central.close()
    await bus.close()


@pytest.fixture
def scrypts(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every password the central system hashes with scrypt."""
    hashed: list[str] = []
    real = central_system.verify_password

    def counting(password: str, stored: str) -> bool:
        hashed.append(password)
        return real(password, stored)

    monkeypatch.setattr(central_system, "verify_password", counting)
    return hashed


async def attempt(ocpp: Ocpp, cp_id: str, password: str, *, source: str = "127.0.0.1") -> int:
    """The HTTP status of one handshake (101 when it connects)."""
    try:
        async with connect(ocpp.url(cp_id), subprotocols=["ocpp1.6"],  # type: ignore[list-item]
                           additional_headers=basic(cp_id, password),
                           local_addr=(source, 0)) as ws:
            await ws.send(BOOT)
            assert json.loads(await ws.recv())[0] == 3
            return 101
    except InvalidStatus as refused:
        return refused.response.status_code


async def test_guessing_is_throttled_without_scrypt_and_the_charger_gets_back_in(
        guarded: Ocpp, scrypts: list[str]) -> None:
    began = time.monotonic()
    answers = [await attempt(guarded, "cp-pw", f"guess {n:04d} long enough") for n in range(40)]
    windows = (time.monotonic() - began) / MAX_BACKOFF  # one more guess may go in per window
    assert answers[:4] == [401] * 4
    assert answers.count(401) == len(scrypts) <= 4 + windows, (answers, windows)
    assert answers.count(429) == 40 - len(scrypts)
    # While throttled, even the right password is refused (else guesses would go on) …
    assert await attempt(guarded, "cp-pw", PASSWORD) == 429
    # … but never for longer than the backoff window.
    await asyncio.sleep(MAX_BACKOFF + 0.1)
    assert await attempt(guarded, "cp-pw", PASSWORD) == 101
    # The verified-password cache still serves a reconnect storm without scrypt.
    before = len(scrypts)
    assert [await attempt(guarded, "cp-pw", PASSWORD) for _ in range(5)] == [101] * 5
    assert len(scrypts) == before


async def test_concurrent_guesses_cost_no_more_than_the_budget(
        guarded: Ocpp, scrypts: list[str]) -> None:
    began = time.monotonic()
    answers = await asyncio.gather(*(attempt(guarded, "cp-pw", f"guess {n:04d} long enough")
                                     for n in range(30)))
    windows = (time.monotonic() - began) / MAX_BACKOFF
    # The budget, what was already hashing when it ran out, and one guess per backoff window.
    assert len(scrypts) <= 3 + central_system.CONCURRENT_SCRYPTS + windows, (answers, windows)
    assert answers.count(429) == 30 - len(scrypts)


async def test_guesses_are_throttled_per_address_and_per_charger_id(guarded: Ocpp) -> None:
    await guarded.charge_points.add("cp-pw3", name="third", lat=1.0, lon=2.0,
                                    password_hash=hash_password(PASSWORD))
    # A charger behind the same NAT or proxy as the guesser has connected before.
    assert await attempt(guarded, "cp-pw2", PASSWORD, source="127.0.0.2") == 101
    for n in range(4):
        await attempt(guarded, "cp-pw", f"guess {n:04d} long enough", source="127.0.0.2")
    # The guessed charger id is throttled from every address …
    assert await attempt(guarded, "cp-pw", PASSWORD, source="127.0.0.3") == 429
    # … the guessing address for every charger whose password would need scrypt …
    assert await attempt(guarded, "cp-pw3", PASSWORD, source="127.0.0.2") == 429
    assert await attempt(guarded, "cp-pw2", "a wrong one, long enough", source="127.0.0.2") == 429
    # … but a charger whose password is known gets in from there, without scrypt,
    assert await attempt(guarded, "cp-pw2", PASSWORD, source="127.0.0.2") == 101
    # and other chargers elsewhere are not bothered.
    assert await attempt(guarded, "cp-pw3", PASSWORD, source="127.0.0.3") == 101


def test_a_charger_failing_now_and_then_is_never_blocked() -> None:
    now = [0.0]
    throttle = AuthThrottle(budget=2, max_backoff=60.0, clock=lambda: now[0])
    for _ in range(100):  # a misconfigured charger retrying every minute
        throttle.failed(["cp:x"])
        assert throttle.retry_after(["cp:x"]) == 0
        now[0] += 60.0


def test_backoff_doubles_up_to_its_cap_and_success_starts_afresh() -> None:
    now = [0.0]
    throttle = AuthThrottle(budget=1, max_backoff=4.0, clock=lambda: now[0])
    throttle.failed(["cp:x"])
    assert throttle.retry_after(["cp:x"]) == 0
    waits = []
    for _ in range(5):
        throttle.failed(["cp:x"])
        waits.append(throttle.retry_after(["cp:x"]))
    assert waits[0] == pytest.approx(1.0) and waits[1] == pytest.approx(2.0, abs=0.1)
    assert max(waits) == pytest.approx(4.0)
    throttle.succeeded(["cp:x"])
    assert throttle.retry_after(["cp:x", "address:y"]) == 0


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["fail", "ok", "wait"]), st.sampled_from(["a", "b"]),
                          st.floats(0.0, 10.0)), max_size=60))
def test_no_key_is_ever_blocked_past_the_cap_nor_after_a_success(
        steps: list[tuple[str, str, float]]) -> None:
    now = [0.0]
    throttle = AuthThrottle(budget=3, max_backoff=5.0, clock=lambda: now[0])
    for action, key, seconds in steps:
        if action == "fail":
            throttle.failed([key])
        elif action == "ok":
            throttle.succeeded([key])
            assert throttle.retry_after([key]) == 0
        else:
            now[0] += seconds
        assert 0 <= throttle.retry_after([key]) <= 5.0
    now[0] += 5.0
    assert throttle.retry_after(["a", "b"]) == 0
