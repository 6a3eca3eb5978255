"""What a connected charger costs the server in memory: no handshake headers kept, the
handlers' routes shared by all connections of a class, no compression state
(docs/performance.md, RSS per charger)."""

from __future__ import annotations

import json

from websockets.asyncio.client import connect

from tests.ocpp.conftest import Ocpp
from tests.ocpp.test_rpc import BOOT, connected, recv


async def test_a_connection_keeps_no_handshake_headers_and_no_routes_of_its_own(
        ocpp: Ocpp) -> None:
    async with connect(ocpp.url("cp-1"), subprotocols=["ocpp1.6"],  # type: ignore[list-item]
                       user_agent_header="field-charger/1.0") as one, \
            connect(ocpp.url("cp-2"), subprotocols=["ocpp1.6"]) as two:  # type: ignore[list-item]
        await connected(ocpp, "cp-1")
        await connected(ocpp, "cp-2")
        first, second = ocpp.central.connection("cp-1"), ocpp.central.connection("cp-2")
        assert first is not None and second is not None
        for conn in (first, second):
            assert conn.websocket.request is not None
            assert conn.websocket.request.path == f"/ocpp/{conn.id}"
            assert not conn.websocket.request.headers and conn.websocket.response is None
        assert first.route_map is second.route_map  # functions of the class, not bound methods
        assert not one.protocol.extensions  # permessage-deflate offered (the default), declined
        # …and both are served as before: the handler and its after-hook get their connection
        # (the hook has the central system configure the charger: GetConfiguration).
        for ws in (one, two):
            await ws.send(json.dumps(BOOT))
            assert (await recv(ws))[2]["status"] == "Accepted"
            assert (await recv(ws))[2] == "GetConfiguration"
