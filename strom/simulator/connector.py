"""State of one connector and of the transaction on it, and the OCPP messages about them."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from ocpp.v16 import call
from ocpp.v16.datatypes import MeterValue, SampledValue
from ocpp.v16.enums import Location, Measurand, ReadingContext, UnitOfMeasure

from strom.simulator.battery import Vehicle
from strom.timeutil import iso

AVAILABLE = "Available"
PREPARING = "Preparing"
CHARGING = "Charging"
SUSPENDED_EV = "SuspendedEV"
FINISHING = "Finishing"
UNAVAILABLE = "Unavailable"


@dataclass
class Transaction:
    """One charging session as the charge point sees it."""

    connector_id: int
    id_tag: str
    vehicle: Vehicle
    meter_start: int
    started_at: str
    last_update: float
    # Known once the central system answered StartTransaction (maybe only after reconnecting).
    transaction_id: int | None = None
    energy_wh: float = 0.0
    stop_reason: str | None = None
    tasks: set[asyncio.Task[None]] = field(default_factory=set)


@dataclass
class Connector:
    """One outlet: status, cumulative energy register, cable, availability."""

    id: int
    register_wh: float
    status: str = AVAILABLE
    plugged: bool = False
    # The transaction ended but the car is still plugged in (Finishing until unplugged).
    finished: bool = False
    # A RemoteStart was accepted and the transaction is being set up.
    starting: bool = False
    operative: bool = True
    # ChangeAvailability answered `Scheduled`: applied when the running transaction ends.
    scheduled_operative: bool | None = None
    tx: Transaction | None = None
    last_tx: Transaction | None = None

    @property
    def meter_wh(self) -> int:
        """The register as the meter shows it: whole Wh, never going down."""
        return int(self.register_wh)

    @property
    def idle_status(self) -> str:
        """Status without a transaction: what the cable and availability say."""
        if not self.operative:
            return UNAVAILABLE
        if self.finished:
            return FINISHING
        return PREPARING if self.plugged else AVAILABLE

    @property
    def free(self) -> bool:
        """A RemoteStart may use it: operative, no transaction, no finished car in the way."""
        return (self.operative and self.tx is None and not self.starting
                and self.status in (AVAILABLE, PREPARING))


def status_notification(connector_id: int, status: str, at: str) -> call.StatusNotification:
    return call.StatusNotification(connector_id=connector_id, error_code="NoError",
                                   status=status, timestamp=at)


def meter_sample(conn: Connector, tx: Transaction | None, context: str,
                 measurands: frozenset[str]) -> MeterValue | None:
    """Energy register, power and the car's state of charge as sampled now, as far as
    `measurands` (MeterValuesSampledData) asks for them; None when it asks for nothing."""
    values = [SampledValue(value=str(conn.meter_wh), context=context,
                           measurand=Measurand.energy_active_import_register,
                           location=Location.outlet, unit=UnitOfMeasure.wh)]
    if tx is not None:
        values += [
            SampledValue(value=f"{tx.vehicle.power_w:.0f}", context=context,
                         measurand=Measurand.power_active_import, location=Location.outlet,
                         unit=UnitOfMeasure.w),
            SampledValue(value=f"{int(tx.vehicle.soc)}", context=context, measurand=Measurand.soc,
                         location=Location.ev, unit=UnitOfMeasure.percent),
        ]
    values = [v for v in values if _name(v.measurand) in measurands]
    return MeterValue(timestamp=iso(), sampled_value=values) if values else None


def meter_values(conn: Connector, tx: Transaction | None, sample: MeterValue) -> Any | None:
    """MeterValues for `sample`; None when its transaction never got an id (nothing to send)."""
    if tx is None:
        return call.MeterValues(connector_id=conn.id, meter_value=[sample])
    if tx.transaction_id is None:
        return None
    return call.MeterValues(connector_id=conn.id, transaction_id=tx.transaction_id,
                            meter_value=[sample])


def start_transaction(tx: Transaction) -> call.StartTransaction:
    return call.StartTransaction(connector_id=tx.connector_id, id_tag=tx.id_tag,
                                 meter_start=tx.meter_start, timestamp=tx.started_at)


def stop_transaction(tx: Transaction, meter_stop: int, stopped_at: str,
                     measurands: frozenset[str]) -> Any | None:
    """StopTransaction, with the final register in transactionData if `measurands`
    (StopTxnSampledData) lists it; None without an id."""
    if tx.transaction_id is None:
        return None
    end = SampledValue(value=str(meter_stop), context=ReadingContext.transaction_end,
                       measurand=Measurand.energy_active_import_register,
                       location=Location.outlet, unit=UnitOfMeasure.wh)
    data = ([MeterValue(timestamp=stopped_at, sampled_value=[end])]
            if _name(end.measurand) in measurands else None)
    return call.StopTransaction(
        meter_stop=meter_stop, timestamp=stopped_at, transaction_id=tx.transaction_id,
        reason=tx.stop_reason, id_tag=tx.id_tag, transaction_data=data)


def _name(measurand: object) -> str:
    """An enum member's OCPP name ("SoC"), not its Python name."""
    return str(getattr(measurand, "value", measurand))
