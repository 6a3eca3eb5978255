"""The per-transaction estimate over a real websocket: after a restart, and at the edges of
StartTransaction and StopTransaction."""

from __future__ import annotations

import pytest
from ocpp.exceptions import PropertyConstraintViolationError
from ocpp.v16 import call

from strom.events import MeterSample, TransactionStopped
from strom.store.db import Database
from tests.ocpp.conftest import Ocpp
from tests.ocpp.test_core_messages import client, next_of


def interval(tx: int, at: str, wh: str) -> call.MeterValues:
    return call.MeterValues(connector_id=1, transaction_id=tx, meter_value=[
        {"timestamp": at, "sampled_value": [
            {"value": wh, "measurand": "Energy.Active.Import.Interval",
             "context": "Sample.Periodic"}]}])


@pytest.mark.parametrize("committed", [True, False], ids=["restart", "rows-queued"])
async def test_interval_sum_survives_a_rebuild_of_the_meter(ocpp: Ocpp, db: Database,
                                                            committed: bool) -> None:
    """A meter is rebuilt from the stored rows after a restart (whose close commits the queue)
    or an eviction, when the rows of the last 0.1 s may still be queued
    (`Database.write_soon`): the rebuild reads those too."""
    async with ocpp.bus.listen(MeterSample) as samples, client(ocpp) as cp:
        tx = (await cp.call(call.StartTransaction(
            connector_id=1, id_tag="T", meter_start=2000,
            timestamp="2026-11-27T10:00:00Z"))).transaction_id
        await cp.call(interval(tx, "2026-11-27T10:01:00Z", "100"))
        await cp.call(interval(tx, "2026-11-27T10:02:00Z", "100"))
        if committed:
            await db.flushed()
        # Forgotten (a new MeterBook in the context would not reach this connection's
        # readings, which keep the book they were made with).
        ocpp.central.context.meters.forget(tx)
        await cp.call(interval(tx, "2026-11-27T10:03:00Z", "100"))
        readings = [await next_of(samples, MeterSample) for _ in range(3)]
    assert [(r.energy_wh, r.source) for r in readings] == [
        (2100, "interval"), (2200, "interval"), (2300, "interval")]


async def test_absurd_meter_start_and_stop_are_refused(ocpp: Ocpp) -> None:
    async with ocpp.bus.listen(TransactionStopped) as stops, client(ocpp) as cp:
        with pytest.raises(PropertyConstraintViolationError):
            await cp.call(call.StartTransaction(connector_id=1, id_tag="T", meter_start=-5,
                                                timestamp="2026-11-27T10:00:00Z"),
                          suppress=False)
        tx = (await cp.call(call.StartTransaction(
            connector_id=1, id_tag="T", meter_start=2000,
            timestamp="2026-11-27T10:00:00Z"))).transaction_id
        await cp.call(call.MeterValues(connector_id=1, transaction_id=tx, meter_value=[
            {"timestamp": "2026-11-27T10:01:00Z", "sampled_value": [{"value": "2500"}]}]))
        await cp.call(call.StopTransaction(meter_stop=10**12, timestamp="2026-11-27T10:02:00Z",
                                           transaction_id=tx))
        stopped = await next_of(stops, TransactionStopped)
        assert stopped.meter_stop_wh == 2500  # the last reading, not 1 TWh


async def test_signed_data_is_ignored_the_plain_value_next_to_it_counts(
        ocpp: Ocpp, caplog: pytest.LogCaptureFixture) -> None:
    """OCPP 1.6's signed meter values whitepaper pairs a `SignedData` value (an OCMF envelope)
    with the raw one (as in https://github.com/SAP/e-mobility-charging-stations-simulator/
    pull/1945 and https://github.com/solidstudiosh/ocpp-virtual-charge-point/pull/63)."""
    signed = {"value": '{"signedMeterData":"T0NNRnx7fQ==","encodingMethod":"OCMF",'
                       '"publicKey":"MFkw"}', "format": "SignedData", "context": "Sample.Periodic"}
    caplog.set_level("INFO")
    async with ocpp.bus.listen(MeterSample) as samples, client(ocpp) as cp:
        tx = (await cp.call(call.StartTransaction(
            connector_id=1, id_tag="T", meter_start=100,
            timestamp="2026-11-27T10:00:00Z"))).transaction_id
        for at, values in [("10:01", [signed, {"value": "150", "context": "Sample.Periodic"}]),
                           ("10:02", [signed]), ("10:03", [signed])]:
            await cp.call(call.MeterValues(connector_id=1, transaction_id=tx, meter_value=[
                {"timestamp": f"2026-11-27T{at}:00Z", "sampled_value": values}]))
        assert (await next_of(samples, MeterSample)).energy_wh == 150
    assert caplog.text.count("SignedData meter values are not read") == 1
