from __future__ import annotations

from strom.config import TariffSettings
from strom.store.charge_points import ChargerRecord
from strom.tariffs.model import Tariff, cost_msat, describe
from strom.tariffs.static import static_tariff


def _cp(tariff: dict) -> ChargerRecord:
    return ChargerRecord(id="x", name="X", lat=0, lon=0, num_connectors=1, password_hash=None,
                       tariff=tariff, vendor=None, model=None, serial_number=None, firmware=None,
                       connected=True, last_seen=None, booted_at=None, created_at="")


def test_cost_energy_fee_and_time() -> None:
    t = Tariff(price_msat_per_kwh=300_000, session_fee_msat=5_000, price_msat_per_minute=100,
               grace_minutes=30)
    assert cost_msat(t, 0, 0) == 5_000
    assert cost_msat(t, 1000, 10) == 305_000
    assert cost_msat(t, 1000, 40) == 305_000 + 1_000
    assert cost_msat(t, 0.5, 0) == 5_000 + 150
    assert cost_msat(t, -5, 0) == 5_000


def test_cost_rounds_up_to_the_msat() -> None:
    t = Tariff(price_msat_per_kwh=1)
    assert cost_msat(t, 1, 0) == 1


def test_static_tariff_overrides_default() -> None:
    default = TariffSettings(price_msat_per_kwh=300_000, session_fee_msat=1000)
    t = static_tariff(default, _cp({"price_msat_per_kwh": 250_000}))
    assert t.price_msat_per_kwh == 250_000
    assert t.session_fee_msat == 1000
    assert t.source == "static"


def test_describe_in_words() -> None:
    t = Tariff(price_msat_per_kwh=300_000, price_msat_per_minute=2_000, grace_minutes=15)
    text = describe(t)
    assert "300 sat per kWh" in text
    assert "no session fee" in text
    assert "2 sat per minute after 15 min" in text


def test_json_roundtrip() -> None:
    t = Tariff(price_msat_per_kwh=1, session_fee_msat=2)
    assert Tariff.from_json(t.to_json()) == t
    assert t.to_json()["currency"] == "msat"
