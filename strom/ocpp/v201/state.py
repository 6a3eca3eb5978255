"""What 2.0.1 connections remember across reconnects: remote starts, unbound transactions,
seqNos and the EVSE statuses from which strom's 1.6-style connector status is worked out.

Mapping: strom's connector n is the charger's EVSE n (a 2.0.1 transaction and
RequestStartTransaction address an EVSE; `/lnurlp/{id}-{n}` stays as it is). An EVSE with
several connectors (a socket and a cable) is one strom connector: Faulted if one is faulted,
Occupied if one is occupied. 2.0.1 has no Preparing/Charging/Finishing connector states: they
come from whether a transaction is open on the EVSE and its `chargingState`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from strom.bounded import Bounded
from strom.ocpp.charge_point import OcppContext
from strom.store.transactions import Transaction

# 2.0.1 chargingState → the 1.6 status sessions read while a transaction is open.
CHARGING = {"Charging": "Charging", "SuspendedEV": "SuspendedEV",
            "SuspendedEVSE": "SuspendedEVSE", "EVConnected": "SuspendedEV", "Idle": "SuspendedEV"}


@dataclass
class Unbound:
    """A transaction the charger started that strom cannot bill yet: no idToken, or no meter
    reading to take its origin from."""

    evse_id: int | None = None
    id_tag: str | None = None
    started_at: str | None = None


@dataclass
class Evse:
    """One EVSE's statuses as the charger reported them."""

    connectors: dict[int, str] = field(default_factory=dict)  # connector → ConnectorStatus
    charging: str | None = None  # 1.6 status while a transaction is open on it
    ended: bool = False  # a transaction ended and the EV was not unplugged yet
    published: str | None = None

    def status(self) -> str:
        """The 1.6 status of the EVSE (what sessions and pages read)."""
        states = set(self.connectors.values())
        if "Faulted" in states:
            return "Faulted"
        if self.charging:
            return self.charging  # a transaction runs, whatever the last StatusNotification said
        if "Occupied" in states:
            return "Finishing" if self.ended else "Preparing"
        if "Reserved" in states:
            return "Reserved"
        if states and states <= {"Unavailable"}:
            return "Unavailable"
        return "Available"


@dataclass
class V201Context:
    """Shared by all 2.0.1 connections of one central system."""

    ocpp: OcppContext
    # (cp_id, remoteStartId) → the idTag strom asked it to start for
    remote_starts: Bounded[tuple[str, int], str] = field(default_factory=Bounded)
    unbound: Bounded[tuple[str, str], Unbound] = field(default_factory=Bounded)
    seq_nos: Bounded[int, int] = field(default_factory=Bounded)
    # (cp_id, the charger's transaction id) → its open transaction as stored: the events of a
    # running transaction (one per meter interval) need no store read to find it.
    open_txs: Bounded[tuple[str, str], Transaction] = field(default_factory=Bounded)
    evses: dict[tuple[str, int], Evse] = field(default_factory=dict)

    def evse(self, cp_id: str, evse_id: int) -> Evse:
        return self.evses.setdefault((cp_id, evse_id), Evse())
