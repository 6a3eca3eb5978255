"""At boot strom configures what chargers sample, and records what it could not.

The chargers are the ocpp library's own ChargePoint, answering GetConfiguration and
ChangeConfiguration the way real ones do: read-only keys, unknown keys, `Rejected` for a
measurand list they cannot sample, `NotSupported`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from ocpp.routing import on
from ocpp.v16 import ChargePoint, call, call_result
from ocpp.v16.enums import Action
from websockets.asyncio.client import connect

from strom.ocpp.sampling import KEYS
from strom.store.db import Database
from tests.ocpp.conftest import Ocpp
from tests.polling import eventually

E, P, SOC = "Energy.Active.Import.Register", "Power.Active.Import", "SoC"


class Charger(ChargePoint):
    """Answers from `keys` ({name: (value, readonly)}); `answers` decides ChangeConfiguration."""

    def __init__(self, cp_id: str, ws: Any, keys: dict[str, tuple[str, bool]],
                 answers: dict[str, Any]) -> None:
        super().__init__(cp_id, ws, response_timeout=5)
        self.keys, self.answers = keys, answers
        self.changes: list[tuple[str, str]] = []
        self.received: list[int] = []  # MessageTypeIds in arrival order

    async def route_message(self, raw_msg: str) -> None:
        self.received.append(json.loads(raw_msg)[0])
        await super().route_message(raw_msg)

    @on(Action.get_configuration)
    def on_get_configuration(self, key: list[str] | None = None) -> call_result.GetConfiguration:
        assert self.received[0] == 3, "configured before its BootNotification was answered"
        asked = key or list(self.keys)
        return call_result.GetConfiguration(
            configuration_key=[{"key": k, "value": self.keys[k][0], "readonly": self.keys[k][1]}
                               for k in asked if k in self.keys],
            unknown_key=[k for k in asked if k not in self.keys])

    @on(Action.change_configuration)
    def on_change_configuration(self, key: str, value: str) -> call_result.ChangeConfiguration:
        self.changes.append((key, value))
        status = self.answers.get(key, "NotSupported")
        status = status(value) if callable(status) else status
        if status == "Accepted":
            self.keys[key] = (value, False)
        return call_result.ChangeConfiguration(status=status)


@asynccontextmanager
async def booted(ocpp: Ocpp, cp_id: str, keys: dict[str, tuple[str, bool]],
                 answers: dict[str, Any]) -> AsyncIterator[Charger]:
    async with connect(ocpp.url(cp_id), subprotocols=["ocpp1.6"]) as ws:  # type: ignore[list-item]
        charger = Charger(cp_id, ws, keys, answers)
        task = asyncio.create_task(charger.start())
        try:
            await charger.call(call.BootNotification(charge_point_vendor="Acme",
                                                     charge_point_model="Picky"))
            yield charger
        finally:
            task.cancel()


async def test_writable_keys_are_set_with_fewer_measurands_when_rejected(
        ocpp: Ocpp, db: Database, caplog: pytest.LogCaptureFixture) -> None:
    keys = {"MeterValuesSampledData": (f"{E},Current.Import", False),
            "MeterValuesSampledDataMaxLength": ("3", True),
            "MeterValueSampleInterval": ("900", False),
            "StopTxnSampledData": ("", False)}
    answers = {"MeterValuesSampledData": lambda v: "Rejected" if SOC in v else "Accepted",
               "MeterValueSampleInterval": "Accepted", "StopTxnSampledData": "NotSupported"}
    caplog.set_level(logging.WARNING)
    async with booted(ocpp, "cp-1", keys, answers) as charger:
        setup = await eventually(lambda: asyncio.sleep(0, ocpp.central.sampling("cp-1")),
                                 lambda s: s is not None)
    assert charger.changes == [("MeterValuesSampledData", f"{E},{P},{SOC}"),
                               ("MeterValuesSampledData", f"{E},{P}"),
                               ("StopTxnSampledData", E),
                               ("MeterValueSampleInterval", "30")]
    assert setup == {"changed": {"MeterValuesSampledData": f"{E},{P}",
                                 "MeterValueSampleInterval": "30"},
                     "kept": {}, "failed": {"StopTxnSampledData": "NotSupported"}}
    await db.flushed()
    logged = await ocpp.event_log.recent("cp-1")
    assert [e["payload"] for e in logged if e["kind"] == "metering_config"] == [setup]
    assert "cp-1: metering not configured as wanted: StopTxnSampledData: NotSupported" \
        in caplog.text


async def test_read_only_and_unknown_keys_are_recorded_not_changed(ocpp: Ocpp) -> None:
    keys = {"MeterValuesSampledData": (E, True), "MeterValueSampleInterval": ("10", False)}
    async with booted(ocpp, "cp-2", keys, {}) as charger:
        setup = await eventually(lambda: asyncio.sleep(0, ocpp.central.sampling("cp-2")),
                                 lambda s: s is not None)
    assert charger.changes == []
    assert setup == {"changed": {}, "kept": {"MeterValueSampleInterval": "10"},
                     "failed": {"MeterValuesSampledData": f"read-only ({E})",
                                "StopTxnSampledData": "unknown to the charger"}}
    assert set(KEYS) >= set(setup["kept"]) | set(setup["failed"])


async def test_a_charger_without_get_configuration_still_charges(ocpp: Ocpp) -> None:
    async with connect(ocpp.url("cp-1"), subprotocols=["ocpp1.6"]) as ws:  # type: ignore[list-item]
        plain = ChargePoint("cp-1", ws, response_timeout=5)
        task = asyncio.create_task(plain.start())
        await plain.call(call.BootNotification(charge_point_vendor="x", charge_point_model="y"))
        setup = await eventually(lambda: asyncio.sleep(0, ocpp.central.sampling("cp-1")),
                                 lambda s: s is not None)
        assert "NotImplemented" in setup["failed"]["GetConfiguration"]
        beat = await plain.call(call.Heartbeat())
        assert beat.current_time
        task.cancel()
