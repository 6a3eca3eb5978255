"""Valid but unusual metering is billed and stopped at the budget (issue 17, defect 1).

A charger (the ocpp library's ChargePoint) reports its energy in one style only: the register
at the Inlet, only `Energy.Active.Import.Interval`, or only power. It would deliver 120 Wh; the
driver prepaid about 33 Wh. strom must bill each style and stop the charger near 33 Wh.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from ocpp.v16 import call

from strom.app import StromApp
from strom.timeutil import iso, parse_iso
from tests.api.charger import TestCharger, running_charger
from tests.conftest import free_settings
from tests.money.conftest import CP, World

PRICE_MSAT_PER_KWH = 30_000_000  # 30 msat per Wh: 1,000 sat buy 33.3 Wh
PREPAID_MSAT = 1_000_000
METER_START_WH = 1_000
STEP_WH = 4.0
DELIVERABLE_WH = 120.0


class StyledCharger(TestCharger):
    """Charges STEP_WH per sample (one second of its own clock) and meters in one `style`."""

    style = "inlet"

    async def _start(self, connector: int, id_tag: str) -> None:
        await self.status(connector, "Preparing")
        self.clock = parse_iso(iso())
        result = await self.call(call.StartTransaction(
            connector_id=connector, id_tag=id_tag, meter_start=METER_START_WH,
            timestamp=iso(self.clock)))
        self.transactions[connector] = result.transaction_id
        self.energy_wh[connector] = METER_START_WH
        await self.status(connector, "Charging")
        self._spawn(self._charge(connector, result.transaction_id))

    async def _charge(self, connector: int, transaction_id: int) -> None:
        while self.transactions.get(connector) == transaction_id:
            if self.energy_wh[connector] - METER_START_WH >= DELIVERABLE_WH:
                await self._stop(transaction_id)  # the car is full: the charger stops itself
                return
            self.clock += timedelta(seconds=1)
            self.energy_wh[connector] += STEP_WH
            await self.call(call.MeterValues(
                connector_id=connector, transaction_id=transaction_id,
                meter_value=[{"timestamp": iso(self.clock),
                              "sampled_value": self._values(connector)}]))
            await asyncio.sleep(0.05)

    def _values(self, connector: int) -> list[dict[str, Any]]:
        if self.style == "inlet":
            return [{"value": f"{self.energy_wh[connector]:.1f}", "unit": "Wh",
                     "measurand": "Energy.Active.Import.Register", "location": "Inlet",
                     "context": "Sample.Periodic"}]
        if self.style == "interval":
            return [{"value": f"{STEP_WH / 1000:.4f}", "unit": "kWh",
                     "measurand": "Energy.Active.Import.Interval", "context": "Sample.Periodic"}]
        # 4 Wh in one second is 14.4 kW, reported per phase.
        return [{"value": "4.8", "unit": "kW", "measurand": "Power.Active.Import",
                 "phase": phase, "context": "Sample.Periodic"} for phase in ("L1", "L2", "L3")]

    def delivered(self, connector: int = 1) -> float:
        return self.energy_wh.get(connector, METER_START_WH) - METER_START_WH


@pytest.fixture
async def strom(data_dir: Path) -> AsyncIterator[StromApp]:
    settings = free_settings(tariff={"price_msat_per_kwh": PRICE_MSAT_PER_KWH})
    async with StromApp(settings, data_dir) as app:
        await app.services.charge_points.add(CP, name="Styles", lat=50.1, lon=8.7,
                                             num_connectors=1)
        yield app


@pytest.mark.parametrize("style", ["inlet", "interval", "power"])
async def test_each_metering_style_is_billed_and_stopped_at_the_budget(
        strom: StromApp, style: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(StyledCharger, "style", style)
    async with running_charger(strom.services.central_system.url, CP, connectors=1,
                               charger_class=StyledCharger) as charger, \
            httpx.AsyncClient(base_url=strom.http_url, timeout=30) as http:
        world = World(strom, None, http)  # type: ignore[arg-type]
        session = await world.pay_to_charge(PREPAID_MSAT)
        done = await world.session_until(session["url"], lambda s: s["state"] in (
            "stopped", "settled"))
        assert done["stop_reason"] == "budget used up", done
        assert charger.remote_stops, "strom never told the charger to stop"
        # Stopped near the 33 Wh paid for, not at the 120 Wh the car would have taken.
        assert charger.delivered() <= 40, charger.delivered()
        assert done["energy_wh"] >= charger.delivered() - 2 * STEP_WH, done
        assert done["consumed_msat"] >= PREPAID_MSAT * 0.8
        assert done["paid_msat"] == done["consumed_msat"] + done["refundable_msat"]
        await world.ledger_ok()


async def test_interval_retries_and_the_end_reading_are_counted_once(strom: StromApp) -> None:
    """A charger resends a MeterValues it got no answer for; StopTransaction carries the end."""
    async with running_charger(strom.services.central_system.url, CP, connectors=1) as charger:
        started = await charger.call(call.StartTransaction(
            connector_id=1, id_tag="nobody", meter_start=500, timestamp="2026-11-27T10:00:00Z"))
        tx = started.transaction_id
        values = call.MeterValues(connector_id=1, transaction_id=tx, meter_value=[
            {"timestamp": "2026-11-27T10:01:00Z", "sampled_value": [
                {"value": "250", "measurand": "Energy.Active.Import.Interval",
                 "context": "Sample.Periodic"},
                # A clock-aligned stream of the same energy must not be added on top.
                {"value": "250", "measurand": "Energy.Active.Import.Interval",
                 "context": "Sample.Clock"}]}])
        async with strom.services.bus.listen() as events:
            await charger.call(values)
            await charger.call(values)  # the retry
            await charger.call(call.StopTransaction(
                meter_stop=500, timestamp="2026-11-27T10:02:00Z", transaction_id=tx,
                transaction_data=[{"timestamp": "2026-11-27T10:02:00Z", "sampled_value": [
                    {"value": "0.1", "unit": "kWh", "context": "Transaction.End",
                     "measurand": "Energy.Active.Import.Interval"}]}]))
            energies = []
            async with asyncio.timeout(5):
                while len(energies) < 3:
                    event = await events.get()
                    if type(event).__name__ == "MeterSample":
                        energies.append((event.energy_wh, event.source))
        assert energies == [(750.0, "interval"), (750.0, "interval"), (850.0, "interval")]
