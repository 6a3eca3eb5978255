"""Handshake rules, reconnects, dead peers, TLS and calls to chargers."""

from __future__ import annotations

import asyncio
import base64
import json
import ssl

import pytest
import trustme
from ocpp.routing import on
from ocpp.v16 import ChargePoint, call_result
from ocpp.v16.enums import Action
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from strom.chargers.control import ControlResult, Outcome, Trigger
from strom.security import hash_password
from strom.store.charge_points import ChargePointRepository
from strom.store.db import Database
from tests.ocpp.conftest import PASSWORD, Ocpp, start_ocpp
from tests.polling import eventually

BOOT = json.dumps([2, "b", "BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"}])


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


async def until(predicate, what: str) -> None:  # noqa: ANN001
    async def probe() -> bool:
        return bool(predicate())

    await eventually(probe, bool, seconds=5)


@pytest.mark.parametrize("path", ["/ocpp/nobody", "/ocpp/", "/elsewhere/cp-1"])
async def test_unknown_charge_point_gets_404(ocpp: Ocpp, path: str) -> None:
    url = f"ws://127.0.0.1:{ocpp.central.port}{path}"
    with pytest.raises(InvalidStatus) as refused:
        async with connect(url, subprotocols=["ocpp1.6"]):  # type: ignore[list-item]
            pass
    assert refused.value.response.status_code == 404


@pytest.mark.parametrize("headers", [{}, basic("cp-pw", "wrong password 123456"),
                                     basic("cp-1", PASSWORD), {"Authorization": "Basic !!"}])
async def test_password_is_required_when_set(ocpp: Ocpp, headers: dict[str, str]) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(ocpp.url("cp-pw"), subprotocols=["ocpp1.6"],  # type: ignore[list-item]
                           additional_headers=headers):
            pass
    assert refused.value.response.status_code == 401
    assert refused.value.response.headers["WWW-Authenticate"].startswith("Basic")


async def test_right_password_connects_twice(ocpp: Ocpp) -> None:
    for _ in range(2):  # the second time is served from the verified-password cache
        async with connect(ocpp.url("cp-pw"), subprotocols=["ocpp1.6"],  # type: ignore[list-item]
                           additional_headers=basic("cp-pw", PASSWORD)) as ws:
            await ws.send(BOOT)
            assert json.loads(await ws.recv())[0] == 3


async def refused_with(url: str, headers: dict[str, str] | None = None) -> int:
    """The HTTP status a handshake to `url` is refused with."""
    with pytest.raises(InvalidStatus) as refused:
        async with connect(url, subprotocols=["ocpp1.6"],  # type: ignore[list-item]
                           additional_headers=headers):
            pass
    return refused.value.response.status_code


async def test_operators_changes_hold_from_the_next_connection(ocpp: Ocpp, db: Database) -> None:
    """The handshake reads the charger once per connection: what the operator changed, from
    another process (the CLI beside a running server), holds for the charger's next one."""
    async with connect(ocpp.url("cp-pw"), subprotocols=["ocpp1.6"],  # type: ignore[list-item]
                       additional_headers=basic("cp-pw", PASSWORD)) as ws:
        await ws.send(BOOT)
        assert json.loads(await ws.recv())[2]["status"] == "Accepted"
    cli = await Database.open(db.path)
    try:
        other = ChargePointRepository(cli)
        await other.update("cp-pw", password_hash=hash_password("a new password 0123456"))
        await other.update("cp-1", ocpp_protocols=("ocpp2.0.1",))
        # The old password, even after it was verified and remembered, no longer gets in.
        assert await refused_with(ocpp.url("cp-pw"), basic("cp-pw", PASSWORD)) == 401
        async with connect(ocpp.url("cp-pw"), subprotocols=["ocpp1.6"],  # type: ignore[list-item]
                           additional_headers=basic("cp-pw", "a new password 0123456")) as ws:
            await ws.send(BOOT)
            assert json.loads(await ws.recv())[0] == 3
            # Rejected while connected: its next BootNotification is.
            await other.update("cp-pw", boot_status="Rejected")
            await ws.send(BOOT)
            answer = json.loads(await ws.recv())
            while answer[0] == 2:  # strom's calls to configure the booted charger
                answer = json.loads(await ws.recv())
            assert answer[2]["status"] == "Rejected"
        async with connect(ocpp.url("cp-1"), subprotocols=["ocpp1.6"]) as ws:  # type: ignore[list-item]
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1002
        await other.remove("cp-2")
        assert await refused_with(ocpp.url("cp-2")) == 404
    finally:
        await cli.close()


async def test_charger_offering_no_subprotocol_is_accepted(ocpp: Ocpp) -> None:
    async with connect(ocpp.url("cp-1")) as ws:
        assert ws.subprotocol is None
        await ws.send(BOOT)
        assert json.loads(await ws.recv())[2]["status"] == "Accepted"


async def test_charger_offering_only_other_protocols_is_closed(ocpp: Ocpp) -> None:
    async with connect(ocpp.url("cp-1"), subprotocols=["ocpp9.9"]) as ws:  # type: ignore[list-item]
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1002
    assert "ocpp1.6" in closed.value.rcvd.reason


async def test_reconnect_replaces_the_old_socket(ocpp: Ocpp) -> None:
    old = await connect(ocpp.url("cp-1"), subprotocols=["ocpp1.6"])  # type: ignore[list-item]
    await until(lambda: ocpp.central.is_connected("cp-1"), "first connection")
    first = ocpp.central.connection("cp-1")
    async with connect(ocpp.url("cp-1"), subprotocols=["ocpp1.6"]) as new:  # type: ignore[list-item]
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(old.recv(), 5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4000
        await until(lambda: ocpp.central.connection("cp-1") is not first, "replacement")
        assert ocpp.central.connected_count() == 1
        await new.send(BOOT)
        assert json.loads(await new.recv())[0] == 3
        stored = await ocpp.charge_points.get("cp-1")
        assert stored is not None and stored.connected  # the old socket's end did not undo it
    await until(lambda: not ocpp.central.is_connected("cp-1"), "disconnect")


@pytest.mark.parametrize("protocol", [b"ocpp1.6", b"ocpp2.0.1"])
async def test_dead_peer_is_dropped_by_ping(db: Database, protocol: bytes) -> None:
    server, bus = await start_ocpp(db, ping_interval=0.2, ping_timeout=0.2)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.central.port)
        writer.write(b"GET /ocpp/cp-1 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: " + protocol
                     + b"\r\n\r\n")
        assert b"101" in await reader.readline()
        await until(lambda: server.central.is_connected("cp-1"), "connected")
        # This peer never answers pings: the server must give up on it by itself.
        await until(lambda: not server.central.is_connected("cp-1"), "dead peer dropped")
        writer.close()
    finally:
        await server.central.close()
        await bus.close()


async def test_tls_security_profile_2(db: Database, tmp_path) -> None:  # noqa: ANN001
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_path))
    cert.private_key_pem.write_to_path(str(key_path))
    server, bus = await start_ocpp(db, tls_cert=str(cert_path), tls_key=str(key_path))
    try:
        assert server.central.url.startswith("wss://")
        client_context = ssl.create_default_context()
        ca.configure_trust(client_context)
        url = f"wss://127.0.0.1:{server.central.port}/ocpp/cp-pw"
        async with connect(url, subprotocols=["ocpp1.6"], ssl=client_context,  # type: ignore[list-item]
                           additional_headers=basic("cp-pw", PASSWORD)) as ws:
            await ws.send(BOOT)
            assert json.loads(await ws.recv())[0] == 3
        with pytest.raises((ConnectionClosed, OSError, InvalidHandshake)):
            async with connect(url.replace("wss", "ws"), subprotocols=["ocpp1.6"]) as plain:  # type: ignore[list-item]
                await plain.recv()
    finally:
        await server.central.close()
        await bus.close()


class Charger(ChargePoint):
    """Answers some calls, refuses one with a CALLERROR, and never answers Reset."""

    @on(Action.unlock_connector)
    def on_unlock(self, connector_id: int) -> call_result.UnlockConnector:
        return call_result.UnlockConnector(status="Unlocked")

    @on(Action.get_configuration)
    def on_get_configuration(self, key: list[str] | None = None) -> call_result.GetConfiguration:
        return call_result.GetConfiguration(
            configuration_key=[{"key": "HeartbeatInterval", "readonly": False, "value": "300"},
                               {"key": "NumberOfConnectors", "readonly": True, "value": "2"}],
            unknown_key=["Nope"])

    @on(Action.change_availability)
    def on_change_availability(self, connector_id: int, type: str) -> None:  # noqa: A002
        raise ValueError("firmware bug")  # → the library answers CALLERROR InternalError

    @on(Action.reset)
    async def on_reset(self, type: str) -> call_result.Reset:  # noqa: A002
        await asyncio.sleep(60)
        return call_result.Reset(status="Accepted")


async def test_calls_to_chargers(db: Database) -> None:
    server, bus = await start_ocpp(db, call_timeout=0.5)
    central = server.central
    control = central.control
    try:
        assert await control.start("cp-1", 1, "TAG") == ControlResult(
            Outcome.NOT_CONNECTED, reason="charge point cp-1 is not connected")
        async with connect(server.url("cp-1"), subprotocols=["ocpp1.6"]) as ws:  # type: ignore[list-item]
            charger = Charger("cp-1", ws)
            task = asyncio.create_task(charger.start())
            await until(lambda: central.is_connected("cp-1"), "connected")
            assert await control.unlock("cp-1", 1) == ControlResult(Outcome.ACCEPTED, "Unlocked")
            config = await control.get_configuration("cp-1")
            assert config.result.ok
            assert config.values == {"HeartbeatInterval": "300", "NumberOfConnectors": "2"}
            assert config.readonly == {"NumberOfConnectors"} and config.unknown == ("Nope",)
            refused = await control.set_availability("cp-1", 1, operative=False)
            assert (refused.outcome, refused.code) == (Outcome.ERROR, "InternalError")
            assert not refused.answered and "refused ChangeAvailability" in refused.reason
            unsupported = await control.set_power_limit("cp-1", 0, 11_000)
            assert unsupported.outcome == Outcome.NOT_SUPPORTED
            assert unsupported.code in ("NotImplemented", "NotSupported")
            slow = await control.reset("cp-1")
            assert slow.outcome == Outcome.TIMEOUT
            assert slow.reason == "charge point cp-1 did not answer Reset within 0.5 s"
            task.cancel()
        await until(lambda: not central.is_connected("cp-1"), "disconnected")
        gone = await control.trigger("cp-1", Trigger.HEARTBEAT)
        assert gone.outcome == Outcome.NOT_CONNECTED and not gone.ok
    finally:
        await central.close()
        await bus.close()


async def test_a_call_no_longer_wanted_at_its_turn_is_not_sent(db: Database) -> None:
    """OCPP-J sends one call at a time: a RemoteStart waits behind a Reset the charger does not
    answer. Its `still_wanted` is asked when its turn comes, not before; False: not sent."""
    server, bus = await start_ocpp(db, call_timeout=0.5)
    central = server.central
    control = central.control
    wanted, asked = True, 0

    async def still_wanted() -> bool:
        nonlocal asked
        asked += 1
        return wanted

    try:
        async with connect(server.url("cp-1"), subprotocols=["ocpp1.6"]) as ws:  # type: ignore[list-item]
            charger = Charger("cp-1", ws)
            task = asyncio.create_task(charger.start())
            await until(lambda: central.is_connected("cp-1"), "connected")
            slow = asyncio.create_task(control.reset("cp-1"))  # holds the charger's call slot
            await asyncio.sleep(0.05)
            start = asyncio.create_task(control.start("cp-1", 1, "TAG",
                                                      still_wanted=still_wanted))
            await asyncio.sleep(0.2)
            assert asked == 0 and not start.done()  # still waiting for its turn
            wanted = False  # e.g. the payer stopped meanwhile
            result = await start
            assert (await slow).outcome == Outcome.TIMEOUT
            assert asked == 1
            assert result.outcome == Outcome.NOT_SENT and not result.ok and not result.answered
            assert result.reason == ("RemoteStartTransaction to charge point cp-1 was no longer"
                                     " wanted when its turn came; nothing was sent")
            task.cancel()
    finally:
        await central.close()
        await bus.close()
