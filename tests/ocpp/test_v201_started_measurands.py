"""TxStartedMeasurands: strom asks a 2.0.1 charger to put its register in the Started event,
so the transaction's meter starts where the charger's did and the energy up to the first
Updated event is billed. A charger that samples nothing at Started (the value it ships with
is empty) would otherwise start strom's meter at its first Updated reading: that energy lost.
"""

from __future__ import annotations

import uuid

import pytest

from strom.events import TransactionStarted
from strom.ocpp.sampling import START_SAMPLED
from tests.ocpp.charger201 import Charger201, Running, reading, running_charger201
from tests.ocpp.conftest import Accepting, Ocpp
from tests.ocpp.test_core_messages import next_of
from tests.polling import eventually

STARTED = ("SampledDataCtrlr", "TxStartedMeasurands")


class StartsAsConfigured(Charger201):
    """Reads its register into the Started event only if TxStartedMeasurands names it; charges
    300 Wh before its first Updated event."""

    async def _start(self, evse: int, id_tag: str, remote_start_id: int) -> None:
        await self.status(evse, "Occupied")
        self.running[evse] = Running(str(uuid.uuid4()), id_tag)
        begin = reading(self.register_wh, "Transaction.Begin")
        await self.event(evse, "Started", "RemoteStart",
                         begin if "Energy.Active.Import.Register" in self.variables[STARTED]
                         else None, chargingState="Charging", remoteStartId=remote_start_id)


async def test_the_register_at_started_is_asked_for_and_billed_from(ocpp: Ocpp) -> None:
    ocpp.central.authorizer = Accepting()
    async with ocpp.bus.listen(TransactionStarted) as queue:
        async with running_charger201(ocpp.url(""), "cp-1",
                                      charger_class=StartsAsConfigured) as charger:
            setup = await eventually(lambda: _sampling(ocpp), lambda s: s is not None)
            assert setup["changed"][START_SAMPLED] == "Energy.Active.Import.Register"
            assert charger.variables[STARTED] == "Energy.Active.Import.Register"
            assert (await ocpp.central.control201.start("cp-1", 1, "tag-started")).ok
            started = await next_of(queue, TransactionStarted)
            # The meter starts at the charger's register, not at its first Updated reading.
            assert started.meter_start_wh == pytest.approx(charger.register_wh)
            await charger.meter(1, 300.0)
            energy = await eventually(
                lambda: ocpp.central.context.meters.energy(started.transaction_id, _none),
                lambda wh: wh is not None and wh > charger.register_wh)
            assert energy - started.meter_start_wh == pytest.approx(300.0)


async def _none(transaction_id: int) -> None:
    return None


async def _sampling(ocpp: Ocpp) -> dict[str, dict[str, str]] | None:
    return ocpp.central.sampling("cp-1")
