"""Ids that cross strom: message ids on the wire and transaction ids on both sides.

Frames are forwarded as the peer wrote them; only an id that must change is replaced in the
text (`with_unique_id`), so everything else stays byte for byte what the sender sent.
"""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass
from typing import Any, Literal

# `[2, "id", …` / `[3, "id", …`: the message type and the unique id, as JSON allows them.
_HEAD = re.compile(r'^\s*\[\s*[234]\s*,\s*("(?:[^"\\]|\\.)*")')

Owner = Literal["strom", "backend"]


def with_unique_id(raw: str, unique_id: str) -> str:
    """`raw` with its unique id replaced; the rest of the text untouched."""
    match = _HEAD.match(raw)
    if match is None:  # parse_frame accepted it, so this does not happen; be safe anyway
        data = json.loads(raw)
        data[1] = unique_id
        return json.dumps(data, separators=(",", ":"))
    start, end = match.span(1)
    return raw[:start] + json.dumps(unique_id) + raw[end:]


def with_payload(raw: str, payload: dict[str, Any]) -> str:
    """`raw` with a changed payload (a transaction id mapped): re-serialized, ids kept."""
    data = json.loads(raw)
    data[-1] = payload  # a CALL's or a CALLRESULT's payload is its last element
    return json.dumps(data, separators=(",", ":"))


class MessageIds:
    """Wire ids for the backend's calls to the charger: never one of strom's (uuid4), never
    reused while a call is open. `open` maps the wire id to the backend's own id."""

    def __init__(self) -> None:
        self._counter = itertools.count(1)
        self.open: dict[str, tuple[str, str, dict[str, Any]]] = {}

    def outbound(self, backend_id: str, action: str, payload: dict[str, Any]) -> str:
        """A fresh wire id for the backend's call `backend_id`."""
        wire = f"pt-{next(self._counter)}"
        self.open[wire] = (backend_id, action, payload)
        return wire

    def answered(self, wire: str) -> tuple[str, str, dict[str, Any]] | None:
        """The backend's id, action and payload of the call the charger answered, once."""
        return self.open.pop(wire, None)


@dataclass(slots=True)
class TxEntry:
    """One open transaction on the charger. `charger_id` is the id the charger uses,
    `strom_id` the one in strom's store, `backend_id` the backend's (None: strom's own, or the
    backend has not answered its StartTransaction yet)."""

    charger_id: int
    strom_id: int | None
    backend_id: int | None
    owner: Owner
    connector_id: int


@dataclass(slots=True)
class NamedTx:
    """An open OCPP 2.0.1 transaction. Its id is the charger's own string, the same for strom
    and the backend, so nothing is mapped: strom keeps whose it is and on which EVSE."""

    owner: Owner
    evse: int | None


class Transactions:
    """The charger's open transactions, by the id the charger knows them by.

    Two sides hand out transaction ids: strom's store and the backend. The charger gets the
    backend's id for the backend's transactions and strom's for strom's, unless that id is
    taken on this charger by the other side's open transaction: then it gets a free one
    counted down from 2^31 - 1, mapped back on every frame."""

    def __init__(self) -> None:
        self._by_charger: dict[int, TxEntry] = {}
        self._spare = itertools.count(2**31 - 1, -1)

    def get(self, charger_id: int | None) -> TxEntry | None:
        return None if charger_id is None else self._by_charger.get(charger_id)

    def add(self, wanted: int, *, strom_id: int | None, backend_id: int | None, owner: Owner,
            connector_id: int) -> TxEntry:
        """Register an open transaction under `wanted` or, if taken, a spare id."""
        charger_id = wanted
        while charger_id in self._by_charger:
            charger_id = next(self._spare)
        entry = TxEntry(charger_id, strom_id, backend_id, owner, connector_id)
        self._by_charger[charger_id] = entry
        return entry

    def close(self, charger_id: int) -> None:
        self._by_charger.pop(charger_id, None)

    def by_strom_id(self, strom_id: int) -> TxEntry | None:
        return next((e for e in self._by_charger.values() if e.strom_id == strom_id), None)

    def by_backend_id(self, backend_id: int) -> TxEntry | None:
        return next((e for e in self._by_charger.values()
                     if e.owner == "backend" and e.backend_id == backend_id), None)

    def connectors(self, owner: Owner) -> set[int]:
        """Connectors with an open transaction of `owner`."""
        return {e.connector_id for e in self._by_charger.values() if e.owner == owner}
