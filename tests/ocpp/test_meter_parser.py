"""The MeterValues parser and the per-transaction estimate: any input, never a bad number."""

from __future__ import annotations

import asyncio
import math
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from strom.ocpp.meter import parse_meter_values
from strom.ocpp.metering import MeterBook, TransactionMeter, readings

MEASURANDS = ["Energy.Active.Import.Register", "Energy.Active.Import.Interval",
              "Power.Active.Import", "SoC", "Current.Import", "Voltage", "Power.Offered",
              "Energy.Active.Export.Register", "Power.Factor", "Temperature", "Frequency"]
UNITS = ["Wh", "kWh", "W", "kW", "varh", "kvarh", "var", "kvar", "VA", "kVA", "A", "V",
         "Celsius", "Percent", "K"]
PHASES = ["L1", "L2", "L3", "N", "L1-N", "L2-N", "L3-N", "L1-L2", "L2-L3", "L3-L1"]
LOCATIONS = ["Outlet", "Inlet", "EV", "Cable", "Body"]
CONTEXTS = ["Sample.Periodic", "Sample.Clock", "Transaction.Begin", "Transaction.End",
            "Trigger", "Interruption.Begin", "Interruption.End", "Other"]


def maybe(options: list[str]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), st.sampled_from(options), st.text(max_size=8),
                     st.integers())


numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.floats(min_value=0, max_value=1e7).map(lambda v: f"{v:.3f}"),
    st.integers(min_value=-10, max_value=10**12).map(str),
    st.sampled_from(["NaN", "nan", "inf", "-inf", "Infinity", "1e400", "-1e400", "abc", "",
                     " 12 ", "1_000", "0x10", "1e-400", "--1", ".5", "5."]),
    st.text(max_size=20), st.integers(), st.none(), st.floats())
sampled_value = st.fixed_dictionaries(
    {"value": numbers},
    optional={"measurand": maybe(MEASURANDS), "unit": maybe(UNITS), "phase": maybe(PHASES),
              "location": maybe(LOCATIONS), "context": maybe(CONTEXTS),
              "format": maybe(["Raw", "SignedData"]),
              # OCPP 2.0.1: a unit with a power-of-ten multiplier, a signed value beside
              "unit_of_measure": st.one_of(st.none(), st.text(max_size=3), st.fixed_dictionaries(
                  {"unit": maybe(UNITS)}, optional={"multiplier": st.one_of(
                      st.integers(), st.floats(), st.booleans(), st.text(max_size=3))})),
              "signed_meter_value": st.one_of(st.none(), st.text(max_size=3), st.dictionaries(
                  st.text(max_size=5), st.text(max_size=50), max_size=3))})
timestamps = st.one_of(
    st.datetimes(timezones=st.just(__import__("datetime").UTC)).map(
        lambda d: d.isoformat().replace("+00:00", "Z")),
    st.integers(min_value=0, max_value=600).map(
        lambda s: f"2026-11-27T10:{s // 60:02d}:{s % 60:02d}Z"),
    st.text(max_size=10), st.none())
meter_value = st.one_of(
    st.fixed_dictionaries({"timestamp": timestamps,
                           "sampled_value": st.lists(sampled_value, max_size=8)}),
    st.integers(), st.text(max_size=5))
messages = st.lists(st.one_of(st.lists(meter_value, max_size=4), st.text(max_size=5)),
                    min_size=1, max_size=6)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages=messages, meter_start=st.integers(min_value=0, max_value=10**9))
def test_any_sampled_values_give_finite_monotonic_readings(messages: list[Any],
                                                           meter_start: int) -> None:
    book = MeterBook(capacity=2)

    async def lookup(transaction_id: int) -> tuple[float, list[Any]]:
        return float(meter_start), []

    async def run() -> None:
        last = float(meter_start)
        for message in messages:
            parsed = parse_meter_values(1, 7, message)
            for row in parsed.rows:
                assert math.isfinite(row.value)
            for sample in await book.samples("cp", 7, parsed.rows, lookup):
                for value in (sample.energy_wh, sample.power_w, sample.soc_percent):
                    assert value is None or math.isfinite(value)
                if sample.energy_wh is not None:
                    assert sample.energy_wh >= last
                    last = sample.energy_wh
                    assert sample.source in ("register", "interval", "power")
                if sample.soc_percent is not None:
                    assert 0 <= sample.soc_percent <= 100
            book.forget(99)  # other transactions come and go; the estimate stays

    asyncio.run(run())


def rows(*values: dict[str, Any], at: str = "2026-11-27T10:00:00Z") -> list[Any]:
    return parse_meter_values(1, 1, [{"timestamp": at, "sampled_value": list(values)}]).rows


def test_outlet_wins_then_none_then_inlet_and_the_location_sticks() -> None:
    meter = TransactionMeter(100.0)
    [(_, first)] = readings(meter, rows(
        {"value": "900", "location": "Inlet"}, {"value": "150"},
        {"value": "140", "location": "Outlet"}))
    assert (first.energy_wh, first.source) == (140.0, "register")
    [(_, second)] = readings(meter, rows(
        {"value": "900", "location": "Inlet"}, {"value": "0.2", "unit": "kWh",
                                                "location": "Outlet"},
        at="2026-11-27T10:01:00Z"))
    assert second.energy_wh == 200.0


def test_phases_are_summed_once_and_a_total_wins() -> None:
    phases = [{"value": "1", "unit": "kW", "measurand": "Power.Active.Import", "phase": p}
              for p in ("L1", "L2", "L3", "L1-N", "N", "L1-L2")]
    [(_, reading)] = readings(TransactionMeter(0.0), rows(*phases))
    assert reading.power_w == 3000.0
    total = {"value": "2500", "measurand": "Power.Active.Import"}
    [(_, reading)] = readings(TransactionMeter(0.0), rows(*phases, total))
    assert reading.power_w == 2500.0


def test_power_is_integrated_by_trapezoids_only_without_energy() -> None:
    meter = TransactionMeter(1000.0)

    def power(watts: str, at: str) -> list[Any]:
        return rows({"value": watts, "measurand": "Power.Active.Import"}, at=at)

    results = readings(meter, power("0", "2026-11-27T10:00:00Z")
                       + power("7200", "2026-11-27T10:10:00Z")
                       + power("7200", "2026-11-27T10:20:00Z"))
    assert [r.energy_wh for _, r in results] == [1000.0, 1000.0 + 600.0, 1000.0 + 1800.0]
    # A gap longer than 15 minutes (or a clock jumping ahead) counts as 15 minutes at most.
    [(_, late)] = readings(meter, power("7200", "2026-11-27T15:00:00Z"))
    assert late.energy_wh == 2800.0 + 1800.0
    # A retried reading counts once; a clock set back: integration goes on from the new time.
    [(_, retried)] = readings(meter, power("7200", "2026-11-27T10:20:00Z"))
    assert retried.energy_wh == 4600.0
    results = readings(meter, power("7200", "2026-11-27T11:10:00Z")
                       + power("7200", "2026-11-27T11:20:00Z"))
    assert [r.energy_wh for _, r in results] == [4600.0, 4600.0 + 1200.0]


def test_refusals_name_the_value() -> None:
    parsed = parse_meter_values(1, 1, [{"timestamp": "2026-11-27T10:00:00Z", "sampled_value": [
        {"value": "NaN"}, {"value": "1e400"}, {"value": "abc", "measurand": "SoC"},
        {"value": "-5"}, {"value": "2", "unit": "MW", "measurand": "Power.Active.Import"},
        {"value": "101", "measurand": "SoC"}, {"value": "5", "unit": "W"},
        {"value": "<signed>", "format": "SignedData"}, {"value": "42"}]}])
    assert [r.value for r in parsed.rows] == [42.0]
    assert parsed.signed == 1
    assert len(parsed.refused) == 7
    assert "'NaN' is not a number" in parsed.refused[0]


# Shapes seen in the field (values are ours; the frames' structure is the chargers').


def test_growatt_begin_register_next_to_the_current_one() -> None:
    """Growatt THOR 11A/S and 22AS put the Transaction.Begin register after the periodic one
    in every sample: https://github.com/lbbrhzn/ocpp/issues/1466,
    https://github.com/lbbrhzn/ocpp/issues/1838 (also a "Project EV" charger:
    https://github.com/evcc-io/evcc/issues/15768, single-phase power on L1 only)."""
    meter = TransactionMeter(150_000.0)

    def sample(now: str, at: str) -> list[Any]:
        return rows(
            {"value": now, "context": "Sample.Periodic", "format": "Raw",
             "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
            {"value": "150000", "context": "Transaction.Begin", "format": "Raw",
             "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
            {"value": "3700", "context": "Sample.Periodic", "format": "Raw",
             "measurand": "Power.Active.Import", "phase": "L1", "unit": "W"},
            {"value": "231.5", "context": "Sample.Periodic", "format": "Raw",
             "measurand": "Voltage", "phase": "L1-N", "unit": "V"}, at=at)

    results = readings(meter, sample("151200", "2026-11-27T10:01:00Z")
                       + sample("152400", "2026-11-27T10:02:00Z"))
    assert [(r.energy_wh, r.power_w) for _, r in results] == [(151200.0, 3700.0),
                                                              (152400.0, 3700.0)]


def test_abb_register_dropouts_do_not_run_the_estimate_back() -> None:
    """ABB Terra sent a register of a fraction of the real one now and then:
    https://github.com/lbbrhzn/ocpp/issues/374."""
    meter = TransactionMeter(0.0)
    values = [("895", "10:00"), ("0.9", "10:01"), ("910", "10:02")]
    results = readings(meter, [row for value, at in values for row in rows(
        {"value": value, "measurand": "Energy.Active.Import.Register", "unit": "Wh",
         "context": "Sample.Periodic"}, at=f"2026-11-27T{at}:00Z")])
    assert [r.energy_wh for _, r in results] == [895.0, 895.0, 910.0]


def test_clock_aligned_kwh_register_with_phase_and_total_power() -> None:
    """A charger that sends the register in kWh and power per phase and in total, with
    Power.Factor and Frequency without units: https://github.com/lbbrhzn/ocpp/pull/1217."""
    phases = [{"value": "3.6", "context": "Sample.Clock", "measurand": "Power.Active.Import",
               "phase": p, "unit": "kW"} for p in ("L1", "L2", "L3")]
    [(_, reading)] = readings(TransactionMeter(733_000.0), rows(
        {"value": "733.5", "context": "Sample.Clock",
         "measurand": "Energy.Active.Import.Register", "unit": "kWh"},
        *phases, {"value": "10.8", "context": "Sample.Clock",
                  "measurand": "Power.Active.Import", "unit": "kW"},
        {"value": "-0.15", "context": "Sample.Clock", "measurand": "Power.Factor"},
        {"value": "49.95", "context": "Sample.Clock", "measurand": "Frequency"}))
    assert (reading.energy_wh, reading.power_w) == (733_500.0, 10_800.0)


def test_2_0_1_values_read_like_1_6() -> None:
    """The same readings as 1.6 sends them (decimal strings, `unit`) and as 2.0.1 does (JSON
    numbers, `unitOfMeasure` with a multiplier) give the same rows."""
    v16 = rows({"value": "12.345", "unit": "kWh", "measurand": "Energy.Active.Import.Register",
                "location": "Outlet", "context": "Sample.Periodic"},
               {"value": "7.2", "unit": "kW", "measurand": "Power.Active.Import", "phase": "L1"},
               {"value": "55", "unit": "Percent", "measurand": "SoC"})
    v201 = rows({"value": 12345, "unitOfMeasure": {"unit": "Wh", "multiplier": 0},
                 "measurand": "Energy.Active.Import.Register", "location": "Outlet",
                 "context": "Sample.Periodic"},
                {"value": 72, "unit_of_measure": {"unit": "W", "multiplier": 2},
                 "measurand": "Power.Active.Import", "phase": "L1"},
                {"value": 55.0, "unitOfMeasure": {"unit": "Percent"}, "measurand": "SoC"})
    assert [(r.measurand, round(r.value, 6), r.unit, r.phase, r.location) for r in v16] == \
        [(r.measurand, round(r.value, 6), r.unit, r.phase, r.location) for r in v201]


def test_2_0_1_multipliers_signs_and_signed_values() -> None:
    parsed = parse_meter_values(1, 1, [{"timestamp": "2026-11-27T10:00:00Z", "sampledValue": [
        {"value": 1.5, "unitOfMeasure": {"unit": "kWh", "multiplier": 3},
         "measurand": "Energy.Active.Import.Register",
         "signedMeterValue": {"signedMeterData": "T0NNRnx7fQ==", "signingMethod": "",
                              "encodingMethod": "OCMF", "publicKey": ""}},
        {"value": -3000, "unitOfMeasure": {"unit": "W"}, "measurand": "Power.Active.Import"},
        {"value": 1, "unitOfMeasure": {"unit": "Wh", "multiplier": 400},
         "measurand": "Energy.Active.Import.Interval"},
        {"value": True, "measurand": "Energy.Active.Import.Register"}]}])
    energy, power = parsed.rows
    assert energy.value == 1.5e6 and energy.unit == "Wh"  # 1.5 kWh × 10³ = 1.5 MWh
    assert power.value == -3000.0  # a signed (exporting) power is kept as sent
    assert parsed.signed_values[0]["encodingMethod"] == "OCMF"
    assert len(parsed.refused) == 2 and "multiplier" in parsed.refused[0]
