"""Which connector a new session may take, and why not; OCPP stop reasons in words."""

from __future__ import annotations

from dataclasses import dataclass

from strom.store.charge_points import ChargerRecord

# A charger takes a new payer on a connector in one of these states.
FREE_STATUSES = ("Available", "Preparing")


class HeldConnectors:
    """Connectors held by something that is no session (an eMSP's reservation,
    `Reservations.hold_roaming`), until when (ISO time): no payer may take them meanwhile."""

    def __init__(self) -> None:
        self._until: dict[tuple[str, int], str] = {}

    def hold(self, cp_id: str, connector_id: int, until: str) -> None:
        self._until[(cp_id, connector_id)] = until

    def release(self, cp_id: str, connector_id: int) -> None:
        self._until.pop((cp_id, connector_id), None)

    def until(self, cp_id: str, connector_id: int) -> str | None:
        return self._until.get((cp_id, connector_id))

    def on(self, cp_id: str) -> dict[int, str]:
        """The charger's held connectors, each with until when (the store's thread asks too:
        `list` copies the items in one step, so a hold added meanwhile cannot break it)."""
        return {n: until for (c, n), until in list(self._until.items()) if c == cp_id}


@dataclass(frozen=True, slots=True)
class ConnectorChoice:
    connector_id: int | None
    reason: str = ""
    in_use: bool = False  # refused because someone is charging there


def choose_connector(cp: ChargerRecord, connector_id: int | None, *, connected: bool,
                     busy: set[int], reserved: dict[int, str] | None = None) -> ConnectorChoice:
    """The requested connector (or any) if free; `busy` are those held by running sessions,
    `reserved` those a paid reservation holds (→ until when, ISO time; "" not yet sent)."""
    if not connected:
        return ConnectorChoice(None, f"charger {cp.name} is offline, try again later")
    wanted = [connector_id] if connector_id else [
        c.connector_id for c in cp.connectors if c.connector_id > 0]
    statuses = []
    for number in wanted:
        connector = cp.connector(number)
        status = connector.status if connector else "Unavailable"
        if number not in busy and status in FREE_STATUSES:
            return ConnectorChoice(number, "")
        if reserved and number in reserved:
            until = reserved[number][11:16]
            statuses.append(f"reserved for another driver until {until} UTC" if until
                            else "reserved for another driver")
        elif number in busy:
            statuses.append("charging for another driver")
        else:
            statuses.append("charging" if status == "Charging" else status.lower())
    in_use = any(s in ("charging", "charging for another driver") for s in statuses)
    if connector_id:
        return ConnectorChoice(None, f"connector {connector_id} is {statuses[0]}", in_use)
    return ConnectorChoice(None, f"no free connector ({', '.join(statuses)})", in_use)


def reason_in_words(ocpp_reason: str) -> str:
    return {
        "EVDisconnected": "car unplugged", "Remote": "stopped remotely", "Local": "stopped at the charger",
        "PowerLoss": "power loss", "Reboot": "charger rebooted", "EmergencyStop": "emergency stop",
        "HardReset": "charger reset", "SoftReset": "charger reset", "DeAuthorized": "deauthorized",
        "UnlockCommand": "connector unlocked", "Other": "stopped",
    }.get(ocpp_reason, ocpp_reason or "stopped")

