"""Pushes to an eMSP: retried with backoff through the outbound fence, bounded per party,
and given up on a refusal."""

from __future__ import annotations

import time
from dataclasses import replace

from strom.config import OcpiSettings
from strom.ocpi.push import Push, Pushes
from strom.ocpi.tokens import header_value
from strom.store.ocpi import PartyRecord
from tests.conftest import loopback_outbound
from tests.doubles.emsp import Emsp
from tests.ocpi.conftest import at_once
from tests.polling import eventually


def _party(emsp: Emsp) -> PartyRecord:
    return PartyRecord(id=1, name="e", state="registered", token_b=emsp.token_b,
                       country_code="NL", party_id="EMS", versions_url=None, version="2.2.1",
                       endpoints=[], credentials=None, created_at="", updated_at="")


async def test_a_flaky_emsp_gets_the_push_after_backoff() -> None:
    async with Emsp().running() as emsp:
        emsp.failing = 2
        pushes = Pushes(loopback_outbound(), OcpiSettings(push_attempts=4), backoff_seconds=0.1)
        started = time.monotonic()
        pushes.send(_party(emsp), Push("PATCH", f"{emsp.base}/2.2.1/locations/a/b", {"n": 1}))
        got = await eventually(lambda: at_once(emsp.pushes("locations")), lambda p: len(p) == 1)
        assert got[0][2] == {"n": 1}
        assert time.monotonic() - started >= 0.1 + 0.2  # waited 0.1 s, then 0.2 s
        assert pushes.stats()[1]["delivered"] == 1
        await pushes.close()


async def test_gives_up_after_the_attempts_and_on_a_refusal() -> None:
    async with Emsp().running() as emsp:
        emsp.failing = 10
        pushes = Pushes(loopback_outbound(), OcpiSettings(push_attempts=2), backoff_seconds=0.01)
        pushes.send(_party(emsp), Push("PUT", f"{emsp.base}/2.2.1/sessions/x", {"n": 1}))
        await eventually(lambda: at_once(pushes.stats()[1]), lambda s: s["failed"] == 1)
        assert emsp.failing == 8  # two tries, no more
        emsp.failing = 0
        # A refusal (401: the eMSP does not know the token) is not sent again.
        wrong = replace(_party(emsp), id=2, token_b="wrong")
        pushes.send(wrong, Push("PUT", f"{emsp.base}/2.2.1/sessions/y", {"n": 2}))
        await eventually(lambda: at_once(pushes.stats()[2]), lambda s: s["failed"] == 1)
        assert emsp.refused == ["/ocpi/emsp/2.2.1/sessions/y"]
        await pushes.close()


async def test_the_queue_is_bounded_and_keeps_the_newest() -> None:
    async with Emsp().running() as emsp:
        emsp.failing = 1  # all ten are queued before the worker runs; the first try fails
        pushes = Pushes(loopback_outbound(), OcpiSettings(push_queue=3, push_attempts=2),
                        backoff_seconds=0.2)
        party = _party(emsp)
        for n in range(10):
            pushes.send(party, Push("PATCH", f"{emsp.base}/2.2.1/locations/{n}", {"n": n}))
        await eventually(lambda: at_once(pushes.stats()[1]),
                         lambda s: s["waiting"] == 0 and s["delivered"] >= 3, seconds=5)
        numbers = [body["n"] for _, _, body in emsp.pushes("locations")]
        assert numbers == [7, 8, 9]
        assert pushes.stats()[1]["dropped"] == 7
        assert header_value(emsp.token_b).startswith("Token ")
        await pushes.close()
