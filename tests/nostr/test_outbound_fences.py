"""Issue 16 (defects 3, 5, 6) and issue 26 part 1, through nostr, LNURL over HTTP and OCPP:
what a zap payer names (their lightning address, the relays of their zap request) is fetched
fenced, bounded and beside everyone else's events, never in their way; a lightning address
that is strom itself is never fetched, paid or turned into a session."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from nostr_sdk import EventBuilder, Kind, Tag, uniffi_set_event_loop
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from relay import Relay
from strom.app import StromApp
from strom.http_server import HttpServer
from strom.outbound import MARKER_HEADER
from strom.sessions.model import Session, State
from strom.simulator.charge_point import SimulatedChargePoint
from tests.conftest import free_settings
from tests.nostr.conftest import Driver, register
from tests.nostr.test_zaps_and_dms import dev_pay, dm17, zap_request
from tests.polling import eventually
from tests.unit.relay_support import RawClient

CP_A, CP_B = "cp-a", "cp-b"
AMOUNT = 3_000_000


@dataclass
class Fleet:
    app: StromApp
    http: httpx.AsyncClient
    pubkeys: dict[str, str]
    chargers: list[SimulatedChargePoint] = field(default_factory=list)


@asynccontextmanager
async def two_chargers(data_dir: Path, **settings: dict) -> AsyncIterator[Fleet]:
    """strom with two keyed, connected chargers (each with a simulator) and an HTTP client."""
    uniffi_set_event_loop(asyncio.get_running_loop())
    pubkeys = {cp: (await register(data_dir, cp)).public_key().to_hex() for cp in (CP_A, CP_B)}
    async with StromApp(free_settings(**settings), data_dir) as app:
        assert app.services is not None and app.services.central_system is not None
        fleet = Fleet(app, httpx.AsyncClient(base_url=app.http_url, timeout=20), pubkeys)
        try:
            for cp in (CP_A, CP_B):
                sim = SimulatedChargePoint(cp, app.services.central_system.url, connectors=2,
                                           meter_interval=0.2, speed=60.0)
                fleet.chargers.append(sim)
                await sim.start()
                await eventually(lambda cp=cp: app.services.charge_points.get(cp),
                                 lambda found: found is not None and found.status == "Available")
            yield fleet
        finally:
            for sim in fleet.chargers:
                await sim.close()
            await fleet.http.aclose()


async def payer(fleet: Fleet, lud16: str | None = None) -> Driver:
    assert fleet.app.relay is not None
    person = Driver(fleet.app.relay.url)
    await person.start()
    if lud16 is not None:
        profile = EventBuilder(Kind(0), json.dumps({"name": "payer", "lud16": lud16}))
        assert await person.client.publish(profile.finalize(person.keys))
    return person


async def zap(fleet: Fleet, person: Driver, cp: str, relays: list[str] | None = None) -> str:
    """Zap `cp` as `person` and pay the invoice; the zap request's relays are `relays`."""
    assert fleet.app.relay is not None
    request = json.loads(zap_request(person.keys, fleet.pubkeys[cp], fleet.app.relay.url,
                                     amount=AMOUNT))
    if relays is not None:  # re-signed with the relays asked for
        tags = [t for t in request["tags"] if t[0] != "relays"] + [["relays", *relays]]
        request = json.loads(EventBuilder(Kind(9734), request["content"])
                             .tags([Tag.parse(t) for t in tags]).finalize(person.keys).as_json())
    answer = (await fleet.http.get(f"/lnurlp/{cp}/callback", params={
        "amount": AMOUNT, "nostr": json.dumps(request)})).json()
    await dev_pay(fleet.app, fleet.http, answer["pr"])
    return str(answer["pr"])


async def receipt_for(person: Driver, cp_pubkey: str) -> None:
    while (await person.next(9735)).author().to_hex() != cp_pubkey:
        pass


async def charge_then_stop(fleet: Fleet, person: Driver, cp: str) -> Session:
    """Zap `cp`, wait for charging, stop by DM: the session ends with sats left over
    (refundable, or already refunded when the payer's address took them at once)."""
    await zap(fleet, person, cp)
    sessions = fleet.app.services.sessions
    await eventually(lambda: sessions.repo.list(cp_id=cp),
                     lambda found: bool(found) and found[0].state == State.CHARGING)
    await dm17(person, fleet.pubkeys[cp], "stop", answer_starts="Stopped.")
    ended = await eventually(lambda: sessions.repo.list(cp_id=cp),
                             lambda found: found[0].state in (State.STOPPED, State.REFUNDED))
    assert ended[0].refundable_msat + ended[0].refunded_msat > 0
    return ended[0]


@asynccontextmanager
async def lnurl_double(routes: list[Route]) -> AsyncIterator[HttpServer]:
    server = HttpServer(Starlette(routes=routes), "127.0.0.1", 0)
    await server.start()
    try:
        yield server
    finally:
        await server.close()


# --- defect 3: one slow lightning address delays nobody else -----------------------------------

async def test_a_slow_lightning_address_delays_no_other_charger(data_dir: Path) -> None:
    hits: list[float] = []

    async def dribble(request: Request) -> Response:
        hits.append(time.monotonic())

        async def one_byte_a_second() -> AsyncIterator[bytes]:
            for _ in range(120):
                yield b" "
                await asyncio.sleep(1.0)
        return StreamingResponse(one_byte_a_second(), media_type="application/json")

    async with lnurl_double([Route("/.well-known/lnurlp/{user}", dribble)]) as slow, \
            two_chargers(data_dir, outbound={"allow_private": True, "timeout_seconds": 4}) \
            as fleet:
        slowpoke = await payer(fleet, f"slow@127.0.0.1:{slow.port}")
        other = await payer(fleet)
        try:
            await charge_then_stop(fleet, slowpoke, CP_A)
            await eventually(lambda: _async(len(hits)), lambda n: n >= 1)
            # The refund to the slow address is under way; another charger's payer now zaps.
            began = time.monotonic()
            await zap(fleet, other, CP_B)
            await receipt_for(other, fleet.pubkeys[CP_B])
            await other.dm("Payment of")
            assert time.monotonic() - began < 2.0
            # The slow address had one fetch, ended by the total deadline, not per read.
            told = await slowpoke.dm("Stopped (")
            assert "lightning:LNURL" in told.replace("lnurl", "LNURL")
            assert len(hits) == 1
        finally:
            await slowpoke.client.close()
            await other.client.close()


async def _async(value: int) -> int:
    """`eventually` probes with a coroutine; this one wraps a plain value."""
    return value


# --- defect 5: a payer's lightning address cannot reach loopback or private hosts -------------

async def test_a_lightning_address_on_loopback_is_never_fetched(data_dir: Path) -> None:
    fetched: list[str] = []

    async def admin_like(request: Request) -> JSONResponse:
        fetched.append(request.url.path)
        return JSONResponse({"status": "ERROR", "reason": "should never be asked"})

    async with lnurl_double([Route("/.well-known/lnurlp/{user}", admin_like)]) as inside, \
            two_chargers(data_dir, outbound={"allow_private": False}) as fleet:
        person = await payer(fleet, f"admin@127.0.0.1:{inside.port}")
        try:
            session = await charge_then_stop(fleet, person, CP_A)
            await person.dm("Stopped (")  # sent once the refund was tried
            assert fetched == []
            told = await person.dm("Your refund of")
            assert "could not be sent" in told and "lightning:LNURL" in told.replace(
                "lnurl", "LNURL")
            current = await fleet.app.services.sessions.repo.get(session.id)
            assert current is not None and current.state == State.STOPPED
            assert current.refundable_msat == session.refundable_msat  # the link still pays
        finally:
            await person.client.close()


# --- defect 6: relays named in a zap request get the receipt and nothing more ------------------

async def test_a_zap_requests_relay_gets_the_receipt_and_nothing_more(
        data_dir: Path, tmp_path: Path) -> None:
    async with Relay(tmp_path / "elsewhere.sqlite3", "127.0.0.1", 0) as elsewhere, \
            two_chargers(data_dir) as fleet:
        watcher = await RawClient.connect(elsewhere.url)
        person = await payer(fleet)
        try:
            await watcher.send("REQ", "all", {"since": int(time.time()) - 5})
            await watcher.expect(lambda m: m[0] == "EOSE")
            assert fleet.app.relay is not None
            await zap(fleet, person, CP_A, relays=[fleet.app.relay.url, elsewhere.url])
            got = await watcher.expect(lambda m: m[0] == "EVENT", within=10)
            assert got[2]["kind"] == 9735 and got[2]["pubkey"] == fleet.pubkeys[CP_A]
            # strom's connection to that relay is closed once the receipt is delivered.
            await eventually(lambda: _async(elsewhere.connection_count), lambda n: n == 1)
            # strom goes on publishing (status, DMs) — to its own relays only.
            await person.dm("Charging started")
            await asyncio.sleep(0.5)
            try:
                later = await watcher.expect(lambda m: m[0] == "EVENT", within=1.0)
            except TimeoutError:
                later = None
            assert later is None, later
        finally:
            await watcher.close()
            await person.client.close()


# --- issue 26: a lightning address that is strom itself ----------------------------------------

async def test_a_refund_to_another_charger_of_this_strom_is_tried_once_and_opens_nothing(
        data_dir: Path) -> None:
    settings = {"sessions": {"address_refund_backoff_seconds": 0.2}}
    async with two_chargers(data_dir, **settings) as fleet:
        own = f"{CP_B}@127.0.0.1:{fleet.app.http.port}"  # the address strom gives cp-b
        person = await payer(fleet, own)
        try:
            session = await charge_then_stop(fleet, person, CP_A)
            await person.dm("Stopped (")
            await asyncio.sleep(1.5)  # several backoff steps
            assert await fleet.app.services.sessions.repo.list(cp_id=CP_B) == []
            told = await person.dm("Your refund of")
            assert own in told and "lightning:LNURL" in told.replace("lnurl", "LNURL")
            db = fleet.app.services.db
            tries = await db.fetchall("SELECT attempts, state FROM address_refunds")
            assert [(t["attempts"], t["state"]) for t in tries] == [(1, "abandoned")]
            current = await fleet.app.services.sessions.repo.get(session.id)
            assert current is not None and current.refundable_msat == session.refundable_msat
        finally:
            await person.client.close()


async def test_strom_refuses_an_lnurl_pay_request_from_itself(data_dir: Path) -> None:
    async with two_chargers(data_dir) as fleet:
        answer = (await fleet.http.get(
            f"/lnurlp/{CP_B}/callback", params={"amount": AMOUNT},
            headers={MARKER_HEADER: fleet.app.services.outbound.marker})).json()
        assert answer["status"] == "ERROR" and "strom itself" in answer["reason"]
        assert await fleet.app.services.sessions.repo.list(cp_id=CP_B) == []


@asynccontextmanager
async def closed_wallet() -> AsyncIterator[tuple[HttpServer, list[float]]]:
    """A lightning address service that refuses every payRequest; when each came."""
    asked: list[float] = []

    async def closed(request: Request) -> JSONResponse:
        asked.append(time.monotonic())
        return JSONResponse({"status": "ERROR", "reason": "wallet closed for the night"})

    async with lnurl_double([Route("/.well-known/lnurlp/{user}", closed)]) as server:
        yield server, asked


def retrying(backoff: float) -> dict[str, dict[str, object]]:
    return {"outbound": {"allow_private": True},
            "sessions": {"address_refund_attempts": 3, "address_refund_backoff_seconds": backoff}}


async def test_a_failing_address_is_tried_a_bounded_number_of_times_with_backoff(
        data_dir: Path) -> None:
    async with closed_wallet() as (shop, asked), \
            two_chargers(data_dir, **retrying(0.3)) as fleet:
        person = await payer(fleet, f"night@127.0.0.1:{shop.port}")
        try:
            await charge_then_stop(fleet, person, CP_A)
            await person.dm("Stopped (")
            await eventually(lambda: _async(len(asked)), lambda n: n >= 3, seconds=5)
            told = await person.dm("Your refund of")
            assert "tried 3 times" in told
            assert len(asked) == 3
            # Backoff 0.3 s, doubling; counted from the start of each try (0.1 s of slack for
            # the time a try takes to reach the address).
            assert asked[1] - asked[0] >= 0.2 and asked[2] - asked[1] >= 0.5
            await asyncio.sleep(1.5)
            assert len(asked) == 3
            try:
                again = await asyncio.wait_for(person.dm("Your refund of"), 1.5)
            except TimeoutError:
                again = None
            assert again is None  # told once
        finally:
            await person.client.close()


async def test_refund_tries_survive_a_restart_without_starting_over(data_dir: Path) -> None:
    settings = retrying(1.0)
    async with closed_wallet() as (shop, asked):
        async with two_chargers(data_dir, **settings) as fleet:
            person = await payer(fleet, f"night@127.0.0.1:{shop.port}")
            try:
                await charge_then_stop(fleet, person, CP_A)
                await eventually(lambda: _async(len(asked)), lambda n: n >= 1)
            finally:
                await person.client.close()
        assert len(asked) == 1
        async with StromApp(free_settings(**settings), data_dir) as again:
            db = again.services.db
            done = await eventually(
                lambda: db.fetchall("SELECT attempts, state FROM address_refunds"),
                lambda rows: rows[0]["state"] == "abandoned", seconds=8)
            assert [(r["attempts"], r["state"]) for r in done] == [(3, "abandoned")]
            assert len(asked) == 3  # the restart went on with try 2, it did not start over
