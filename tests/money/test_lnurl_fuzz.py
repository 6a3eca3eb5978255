"""Fuzzed LNURL parameters: every answer is a LUD-06 JSON answer, never a server error, and
nothing but well-formed requests creates a session."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.money.conftest import CP, World, running_world

text = st.text(max_size=300)
params = st.fixed_dictionaries({}, optional={
    "amount": st.one_of(text, st.integers(-10**15, 10**15).map(str)),
    "comment": text,
    "nostr": st.one_of(text, st.just('{"kind": 9734}')),
    "q": text,
})
targets = st.sampled_from([CP, f"{CP}-1", f"{CP}-9", f"{CP}-x", "nobody", "%00", "a" * 300])


@pytest.fixture
async def world(data_dir: Path) -> AsyncIterator[World]:
    """Fuzzing is one client asking hundreds of times: its rate limit must not hide the rest
    (test_abuse_limits.py tests the limit)."""
    async with running_world(data_dir, lnurl={"callback_burst": 100_000}) as running:
        yield running


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(target=targets, query=params)
async def test_pay_callback_answers_every_input(world: World, target: str,
                                                query: dict[str, str]) -> None:
    answer = await world.http.get(f"/lnurlp/{quote(target, safe='')}/callback", params=query)
    assert answer.status_code in (200, 404), answer.text
    if answer.status_code == 200:
        body = answer.json()
        assert body.get("status") == "ERROR" and body["reason"] or body.get("pr"), body


@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(k1=text, pr=text, token=st.text(min_size=1, max_size=40))
async def test_withdraw_callback_answers_every_input(world: World, k1: str, pr: str,
                                                     token: str) -> None:
    answer = await world.http.get(f"/lnurlw/{quote(token, safe='')}/callback",
                                  params={"k1": k1, "pr": pr})
    assert answer.status_code in (200, 404)
    if answer.status_code == 200:
        assert answer.json()["status"] == "ERROR"
