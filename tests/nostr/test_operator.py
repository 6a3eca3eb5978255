"""Operators (`[operator] npubs` in nostr-keys.toml) may reset, unlock, switch connectors and
cap power by DM; the charger gets the OCPP call, and each command is audited like one from the
admin API (`strom.chargers.operator`)."""

from __future__ import annotations

import asyncio
import tomllib
from pathlib import Path

import tomli_w
from nostr_sdk import Keys, uniffi_set_event_loop

from strom.app import StromApp
from strom.keys import keys_path
from strom.security import write_secret_file
from strom.simulator.charge_point import SimulatedChargePoint
from tests.conftest import free_settings
from tests.nostr.conftest import CP, Driver, register
from tests.nostr.test_zaps_and_dms import dm17
from tests.polling import eventually


async def test_operator_commands_by_dm(data_dir: Path) -> None:
    uniffi_set_event_loop(asyncio.get_running_loop())
    cp_keys = await register(data_dir)
    operator = Keys.generate()
    path = keys_path(data_dir, "nostr-keys.toml")
    data = tomllib.loads(path.read_text())
    data["operator"] = {"npubs": [operator.public_key().to_bech32()]}
    write_secret_file(path, tomli_w.dumps(data))
    async with StromApp(free_settings(), data_dir) as app:
        charger = SimulatedChargePoint(CP, app.services.central_system.url, connectors=2,
                                       meter_interval=1.0, finish_delay=0.1)
        await charger.start()
        await eventually(lambda: app.services.charge_points.get(CP),
                         lambda cp: cp is not None and cp.status == "Available")
        person = Driver(app.relay.url)
        person.keys = operator
        await person.start()
        cp_pub = cp_keys.public_key().to_hex()
        try:
            assert "Operator: reset" in await dm17(person, cp_pub, "help")
            assert await dm17(person, cp_pub, "availability 2 off") == "Availability: Accepted"
            await charger.wait_for(lambda: charger.connector_status(2) == "Unavailable")
            assert await dm17(person, cp_pub, "unlock 1") == "Unlock: Unlocked"
            # A connector the charger does not have is refused by strom, not sent.
            assert await dm17(person, cp_pub, "unlock 9") == \
                f"Not sent: {CP} has connectors 1..2."
            assert await dm17(person, cp_pub, "availability 3 on") == \
                f"Not sent: {CP} has connectors 0..2."
            assert "Usage: availability N on|off" in await dm17(person, cp_pub, "availability 1")
            # The simulator lists no SmartCharging profile: nothing is sent, the operator is
            # told why (never "Limit: None").
            assert "does not support SmartCharging" in await dm17(
                person, cp_pub, "limit 1 11kw")
            assert await dm17(person, cp_pub, "limit 1 lots") == "Usage: limit N WATTS|off"
            assert await dm17(person, cp_pub, "reset") == "Reset accepted."
            audit = [e["payload"] for e in await app.services.event_log.recent(CP)
                     if e["kind"] == "operator_command"]
            by = f"nostr:{operator.public_key().to_hex()}"
            assert [(e["command"], e["args"], e["outcome"], e["by"]) for e in reversed(audit)] \
                == [("availability", {"connector_id": 2, "operative": False}, "accepted", by),
                    ("unlock", {"connector_id": 1}, "accepted", by),
                    ("limit", {"connector_id": 1, "watts": 11000.0}, "not_supported", by),
                    ("reset", {"type": "Soft"}, "accepted", by)]
        finally:
            await person.client.close()
            await charger.close()
