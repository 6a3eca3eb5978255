"""Which OCPP a charger speaks: the websocket subprotocols strom offers, and the choice.

A charger offers its subprotocols in `Sec-WebSocket-Protocol`; strom picks the highest both
speak, within the charger's allow-list (`strom cp add --ocpp`, the API's `ocpp_protocols`).
A charger that offers none is taken as 1.6 (many 1.6 chargers send no header), if 1.6 is allowed.
"""

from __future__ import annotations

from collections.abc import Iterable

from strom.errors import UserError

OCPP16 = "ocpp1.6"
OCPP201 = "ocpp2.0.1"
OCPP21 = "ocpp2.1"
# Highest first: the order of preference.
SUPPORTED = (OCPP21, OCPP201, OCPP16)


def parse_allowed(value: str | Iterable[str] | None) -> tuple[str, ...] | None:
    """An allow-list in strom's order (None: all); unknown names are a UserError naming them."""
    if value is None:
        return None
    names = value.replace(",", " ").split() if isinstance(value, str) else list(value)
    unknown = sorted(set(names) - set(SUPPORTED))
    if unknown:
        raise UserError(f"unknown OCPP protocol(s) {', '.join(unknown)}: use "
                        f"{', '.join(SUPPORTED)}")
    if not names:
        raise UserError(f"name at least one OCPP protocol of {', '.join(SUPPORTED)}")
    return tuple(p for p in SUPPORTED if p in names)


def choose(offered: Iterable[str], allowed: tuple[str, ...] | None) -> str | None:
    """The highest protocol both speak; None when there is none."""
    usable = allowed or SUPPORTED
    offered = set(offered)
    return next((p for p in usable if p in offered), None)


# Where OCPP 2.0.1's device model keeps the 1.6 keys strom reads and sets: 1.6 key → (component, variable).
# Read and set by strom (`strom.ocpp.v201.commands`) and offered by the simulator.
DEVICE_MODEL = {
    "MeterValuesSampledData": ("SampledDataCtrlr", "TxUpdatedMeasurands"),
    "MeterValueSampleInterval": ("SampledDataCtrlr", "TxUpdatedInterval"),
    "StopTxnSampledData": ("SampledDataCtrlr", "TxEndedMeasurands"),
    # 2.0.1's own: what the Started event carries (1.6's StartTransaction has meterStart)
    "TxStartedMeasurands": ("SampledDataCtrlr", "TxStartedMeasurands"),
    # 1.6 says Current/Power, 2.0.1 A/W
    "ChargingScheduleAllowedChargingRateUnit": ("SmartChargingCtrlr", "RateUnit"),
}
