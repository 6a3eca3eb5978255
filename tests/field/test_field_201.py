"""Real OCPP 2.0.1 frames from public posts (tests/data/field/v201/), read as strom reads them.

No public post found so far shows a whole 2.0.1 session of a real charger (Started → Updated →
Ended with meter values; tests/data/field/README.md lists what was searched), so these are
single frames: each goes through the 2.0.1 schema and the same metering code that bills.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from ocpp.messages import Call, validate_payload

from strom.ocpp.meter import parse_meter_values
from strom.ocpp.metering import TransactionMeter, readings

V201_DIR = Path(__file__).resolve().parent.parent / "data" / "field" / "v201"
FIXTURES = sorted(V201_DIR.glob("*.json"))


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def test_there_are_real_201_frames() -> None:
    assert FIXTURES
    for path in FIXTURES:
        data = load(path)
        assert data["source"].startswith("https://github.com/"), path.name
        assert data["notes"], path.name


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.stem)
async def test_a_real_201_frame_is_valid_and_read_as_its_register(path: Path) -> None:
    data = load(path)
    _, unique_id, action, payload = data["frame"]
    await validate_payload(Call(unique_id, action, payload), "2.0.1")
    parsed = parse_meter_values(1, 7, payload["meterValue"])
    assert not parsed.refused
    meter = TransactionMeter(meter_start_wh=0.0)
    (_, reading), = readings(meter, parsed.rows)
    assert reading.energy_wh == pytest.approx(data["expected_register_wh"])
