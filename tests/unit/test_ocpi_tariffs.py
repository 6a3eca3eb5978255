"""strom's prices as OCPI Tariffs: BTC exact to the msat; a dynamic price one element per
published slot, restricted to its hours, valid until the last slot ends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from strom.config import OcpiSettings
from strom.ocpi.tariffs import MSAT_PER_BTC, btc, ocpi_tariff
from strom.tariffs.dynamic import PriceSlot
from strom.tariffs.model import Tariff


def test_a_static_tariff_in_btc() -> None:
    tariff = Tariff(price_msat_per_kwh=123_456_789, session_fee_msat=1_000,
                    price_msat_per_minute=7)
    body = ocpi_tariff("cp-1", tariff, [], OcpiSettings(), last_updated="2026-01-01T00:00:00Z")
    assert body["currency"] == "BTC" and body["id"] == "cp-1" and "end_date_time" not in body
    parts = {c["type"]: c["price"] for e in body["elements"] for c in e["price_components"]}
    assert round(parts["ENERGY"] * MSAT_PER_BTC) == 123_456_789
    assert round(parts["FLAT"] * MSAT_PER_BTC) == 1_000
    assert round(parts["TIME"] * MSAT_PER_BTC) == 7 * 60  # per hour
    assert all(round(btc(m) * MSAT_PER_BTC) == m for m in (1, 999, 10**11 + 1, 2**40))


def test_a_dynamic_tariff_has_one_element_per_slot_and_ends_with_the_last() -> None:
    start = datetime(2026, 3, 1, 22, 0, tzinfo=UTC)
    slots = [PriceSlot(start + timedelta(hours=h), start + timedelta(hours=h + 1), 80.0,
                       100_000 + h, None) for h in range(3)]
    tariff = Tariff(price_msat_per_kwh=100_000, source="dynamic",
                    valid_until="2026-03-01T23:00:00.000Z")
    body = ocpi_tariff("cp-1", tariff, slots, OcpiSettings(), last_updated="x")
    energy = [(e["restrictions"], c["price"]) for e in body["elements"]
              for c in e["price_components"] if c["type"] == "ENERGY"]
    assert [round(p * MSAT_PER_BTC) for _, p in energy] == [100_000, 100_001, 100_002]
    assert energy[0][0] == {"start_date": "2026-03-01", "end_date": "2026-03-02",
                            "start_time": "22:00", "end_time": "23:00"}  # end_date exclusive
    assert energy[1][0] == {"start_date": "2026-03-01", "end_date": "2026-03-02",
                            "start_time": "23:00", "end_time": "00:00"}  # crosses midnight
    assert energy[2][0]["start_date"] == "2026-03-02" and energy[2][0]["start_time"] == "00:00"
    assert body["end_date_time"] == "2026-03-02T01:00:00.000Z"
