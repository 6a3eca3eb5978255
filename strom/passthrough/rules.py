"""Who may do what on a charger that strom shares with its backend.

Pure decisions over what strom knows of the charger's transactions (`Transactions`); the
connection carries them out. The table in docs/architecture.md ("Passthrough") is the
documentation of these rules; keep the two together.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from strom.ocpp.protocols import DEVICE_MODEL
from strom.ocpp.sampling import INTERVAL, SAMPLED, STOP_SAMPLED
from strom.passthrough.ids import Transactions
from strom.passthrough.upstream import REPLAYED, SHEDDABLE

# Configuration strom's billing relies on (strom/ocpp/sampling.py sets them at boot).
STROM_KEYS = frozenset({SAMPLED, INTERVAL, STOP_SAMPLED})
# Charger calls strom answers itself when the idTag is one of strom's sessions'.
ID_TAG_CALLS = frozenset({"Authorize", "StartTransaction"})
# Charger calls that name a transaction: its owner handles them.
TRANSACTION_CALLS = frozenset({"MeterValues", "StopTransaction"})
REJECTED = {"status": "Rejected"}


def refuse_backend_call(action: str, payload: dict[str, Any], *, strom_connectors: set[int],
                        transactions: Transactions) -> dict[str, Any] | None:
    """The answer strom gives the backend instead of the charger's, or None: forward it.

    - RemoteStartTransaction on a connector a lightning session holds (starting, charging,
      stopping): Rejected, as a charger answers for an occupied connector.
    - RemoteStopTransaction of a transaction that is strom's: Rejected (the backend never
      saw it, so it can only be a guess or a stale id).
    Everything else goes to the charger, whatever strom thinks of it (Reset, configuration,
    vendor DataTransfer, actions strom does not know): the backend stays the charger's owner.
    """
    if action == "RemoteStartTransaction":
        connector = payload.get("connectorId")
        if isinstance(connector, int) and connector in strom_connectors:
            return REJECTED
    if action == "RemoteStopTransaction":
        tid = payload.get("transactionId")
        if isinstance(tid, int) and transactions.by_backend_id(tid) is None:
            entry = transactions.get(tid)
            if entry is not None and entry.owner == "strom":
                return REJECTED
    return None


@dataclass(frozen=True, slots=True)
class ProtocolRules:
    """What differs between the protocols a passthrough speaks: the charger calls replayed
    to a backend that was away, those shed first from a full queue, and whether a backend
    call the charger accepted changed a setting strom's billing relies on (and what it set,
    for the event log)."""

    replayed: frozenset[str]
    sheddable: frozenset[str]
    changes_strom_key: Callable[[str, dict[str, Any], dict[str, Any]], bool]
    what_changed: Callable[[dict[str, Any]], dict[str, Any]]


def changes_strom_key(action: str, payload: dict[str, Any], answer: dict[str, Any]) -> bool:
    """The backend changed a setting strom's billing relies on, and the charger took it."""
    return (action == "ChangeConfiguration" and payload.get("key") in STROM_KEYS
            and answer.get("status") in ("Accepted", "RebootRequired"))


def _key_changed(payload: dict[str, Any]) -> dict[str, Any]:
    return {"key": payload.get("key"), "value": payload.get("value")}


RULES16 = ProtocolRules(REPLAYED, SHEDDABLE, changes_strom_key, _key_changed)


# --- OCPP 2.0.1 ---------------------------------------------------------------------------

# What a 2.0.1 backend needs for its records, replayed in the order the charger sent it (so a
# transaction's TransactionEvents in seqNo order). Heartbeat, Authorize, DataTransfer and
# reports answered by strom meanwhile mean nothing later.
REPLAYED201 = frozenset({"BootNotification", "StatusNotification", "TransactionEvent",
                         "MeterValues", "SecurityEventNotification",
                         "FirmwareStatusNotification", "LogStatusNotification"})
SHEDDABLE201 = frozenset({"MeterValues", "StatusNotification"})
# STROM_KEYS where 2.0.1's device model keeps them: (component, variable).
STROM_VARIABLES = frozenset(DEVICE_MODEL[key] for key in STROM_KEYS)


def refuse_backend_call201(action: str, payload: dict[str, Any], *, strom_evses: set[int],
                           strom_transactions: set[str]) -> dict[str, Any] | None:
    """2.0.1's `refuse_backend_call`: RequestStartTransaction on an EVSE a lightning session
    holds, RequestStopTransaction of strom's transaction: Rejected. Everything else goes to
    the charger."""
    if action == "RequestStartTransaction":
        evse = payload.get("evseId")
        if isinstance(evse, int) and evse in strom_evses:
            return REJECTED
    if action == "RequestStopTransaction" and payload.get("transactionId") in strom_transactions:
        return REJECTED
    return None


def changes_strom_variable(action: str, payload: dict[str, Any],
                           answer: dict[str, Any]) -> bool:
    """2.0.1's `changes_strom_key`: a SetVariables the charger took for one of strom's."""
    results = answer.get("setVariableResult")
    if action != "SetVariables" or not isinstance(results, list):
        return False
    return any(isinstance(r, dict) and r.get("attributeStatus") in ("Accepted", "RebootRequired")
               and (_name(r.get("component")), _name(r.get("variable"))) in STROM_VARIABLES
               for r in results)


def _name(part: Any) -> Any:
    return part.get("name") if isinstance(part, dict) else None


def _variables_changed(payload: dict[str, Any]) -> dict[str, Any]:
    data = payload.get("setVariableData")
    items = data[:8] if isinstance(data, list) else []  # the backend's: bounded
    return {"variables": {f"{_name(i.get('component'))}.{_name(i.get('variable'))}":
                          str(i.get("attributeValue"))[:100]
                          for i in items if isinstance(i, dict)}}


RULES201 = ProtocolRules(REPLAYED201, SHEDDABLE201, changes_strom_variable,
                         _variables_changed)
