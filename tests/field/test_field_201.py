"""Real OCPP 2.0.1 frames from public posts (tests/data/field/v201/).

A whole session (`frames`, `expected_energy_wh`: KEBA's P30) is replayed through the real
server as in `test_field_corpus.py`: a driver pays over LNURL, strom sends
RequestStartTransaction, the recorded charger sends its TransactionEvents, and the session must
bill the energy the frames show, the books balanced. A single frame (`frame`,
`expected_register_wh`) goes through the 2.0.1 schema and the metering code that bills.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from ocpp.messages import Call, validate_payload

from strom.ocpp.meter import parse_meter_values
from strom.ocpp.metering import TransactionMeter, readings
from tests.field.conftest import PREPAY_MSAT
from tests.field.replay import CALLRESULT, Fixture
from tests.field.replay201 import RecordedCharger201
from tests.field.test_field_corpus import assert_billed
from tests.money.conftest import World
from tests.polling import eventually

V201_DIR = Path(__file__).resolve().parent.parent / "data" / "field" / "v201"
FIXTURES = sorted(V201_DIR.glob("*.json"))
FRAMES = [p for p in FIXTURES if "frame" in json.loads(p.read_text())]
SESSIONS = [Fixture.load(p) for p in FIXTURES if "frames" in json.loads(p.read_text())]


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def test_there_are_real_201_frames() -> None:
    assert FIXTURES
    for path in FIXTURES:
        data = load(path)
        assert data["source"].startswith("https://github.com/"), path.name
        assert data["notes"], path.name


@pytest.mark.parametrize("path", FRAMES, ids=lambda p: p.stem)
async def test_a_real_201_frame_is_valid_and_read_as_its_register(path: Path) -> None:
    data = load(path)
    _, unique_id, action, payload = data["frame"]
    await validate_payload(Call(unique_id, action, payload), "2.0.1")
    parsed = parse_meter_values(1, 7, payload["meterValue"])
    assert not parsed.refused
    meter = TransactionMeter(meter_start_wh=0.0)
    (_, reading), = readings(meter, parsed.rows)
    assert reading.energy_wh == pytest.approx(data["expected_register_wh"])


@pytest.mark.parametrize("fixture", SESSIONS, ids=[f.name for f in SESSIONS])
async def test_a_real_201_session_bills_the_energy_the_charger_reported(
        world: World, fixture: Fixture) -> None:
    app = world.app
    assert app.services is not None and app.services.central_system is not None
    cp_id = f"field-{fixture.name}"
    await app.services.charge_points.add(cp_id, name=fixture.model, lat=50.1, lon=8.7)
    charger = RecordedCharger201(fixture,
                                 f"{app.services.central_system.url.rstrip('/')}/{cp_id}")
    await charger.connect()
    try:
        # Neither is in the post: the model from the fixture, the EVSE free before paying.
        boot = await charger.send_synthetic("BootNotification", {
            "chargingStation": {"vendorName": fixture.vendor, "model": fixture.model},
            "reason": "PowerUp"})
        assert boot[0] == CALLRESULT and boot[2]["status"] == "Accepted", boot
        await charger.send_synthetic("StatusNotification", {
            "timestamp": "2025-08-21T07:00:00Z", "connectorStatus": "Available", "evseId": 1,
            "connectorId": 1})
        await eventually(lambda: app.services.charge_points.get(cp_id),
                         lambda cp: cp.connector(1).status == "Available")
        session = await world.pay_to_charge(PREPAY_MSAT, target=cp_id)
        await asyncio.wait_for(charger.remote_start.wait(), timeout=10)
        for frame in fixture.calls():
            answer = await charger.replay(frame)
            assert answer[0] == CALLRESULT, (frame, answer)
        await assert_billed(world, session["url"], fixture, stopped=True)
    finally:
        await charger.close()
