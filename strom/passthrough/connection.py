"""A charger that keeps its backend: strom's handlers and the backend's, on one connection.

Every charger call goes one of two ways:

- **strom's** (lightning on, and the idTag is a lightning session's, or the transaction is
  strom's): strom's own handler answers it, exactly as for a charger without a backend; the
  backend never sees it.
- **the backend's** (everything else): forwarded as the charger wrote it; the backend's answer
  goes back as the backend wrote it. strom's handler runs on it too, after the answer is out,
  with its answer kept to itself, so strom's view (statuses, transactions, meter values, the
  event log) stays true. When the backend is away or too slow, strom's answer goes to the
  charger instead, and the transaction messages queue for the backend (`upstream`).

The backend's calls go to the charger with a wire id of strom's (`ids.MessageIds`), so they
never meet strom's own calls; `rules` decides the few strom refuses. Frames from the charger
are read by one loop and the charger's calls handled by a worker of their own, so the charger's
answers to strom's calls are read while a call waits for the backend.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from typing import Any

from ocpp.v16 import call, call_result

from strom.chargers.control import StillWanted
from strom.config import PassthroughSettings
from strom.ocpp.charge_point import ChargePointConnection, OcppContext
from strom.ocpp.frames import CALLRESULT, Frame
from strom.ocpp.protocols import OCPP16, OCPP201
from strom.ocpp.v201.state import V201Context
from strom.outbound import Outbound
from strom.passthrough.config import UpstreamConfig, UpstreamError
from strom.passthrough.core import ChargerState, LightningSessions, PassthroughCore
from strom.passthrough.ids import TxEntry, with_payload
from strom.passthrough.rules import (
    ID_TAG_CALLS,
    RULES16,
    TRANSACTION_CALLS,
    refuse_backend_call,
)
from strom.passthrough.upstream import Answer, Outgoing
from strom.passthrough.v201 import V201PassthroughConnection
from strom.store.charge_points import ChargerRecord

log = logging.getLogger(__name__)

@dataclass
class _Start:
    """A backend StartTransaction in flight: its entry and the backend's id, whichever is
    known first (the backend may answer a replayed one long after strom did)."""

    entry: TxEntry | None = None
    backend_id: int | None = None


class PassthroughConnection(PassthroughCore, ChargePointConnection):
    """A 1.6J charger with a backend of its own; see the module docstring."""

    rules = RULES16

    def __init__(self, cp_id: str, websocket: Any, context: OcppContext,
                 response_timeout: float, *, config: UpstreamConfig,
                 settings: PassthroughSettings, sessions: LightningSessions | None,
                 outbound: Outbound | None, max_message_bytes: int,
                 state: ChargerState | None = None) -> None:
        super().__init__(cp_id, websocket, context, response_timeout)
        self.transactions = self._setup_passthrough(
            config=config, settings=settings, sessions=sessions, outbound=outbound,
            max_message_bytes=max_message_bytes, state=state).transactions

    async def _is_stroms(self, frame: Frame) -> bool:
        sessions, payload = self._sessions, frame.payload
        if sessions is None:
            return False
        if frame.action in ID_TAG_CALLS:
            tag = payload.get("idTag")
            return isinstance(tag, str) and await sessions.owns_id_tag(self.id, tag)
        if frame.action in TRANSACTION_CALLS:
            tid = payload.get("transactionId")
            entry = self.transactions.get(tid if isinstance(tid, int) else None)
            if entry is not None:
                return entry.owner == "strom"
            if isinstance(tid, int):
                # After a restart the map is empty: strom's open transactions are in its store.
                tx = await self._ctx.transactions.get(tid)
                if (tx is not None and tx.cp_id == self.id and tx.stopped_at is None
                        and await sessions.owns_id_tag(self.id, tx.id_tag)):
                    self.transactions.add(tid, strom_id=tid, backend_id=None, owner="strom",
                                          connector_id=tx.connector_id)
                    return True
        return False

    # --- strom's transactions ---------------------------------------------------------------

    async def _strom_answer(self, frame: Frame) -> str:
        """strom's handler's answer to a call that is strom's, in the charger's ids."""
        entry = self._entry(frame)
        answer = await self._observe(frame, entry)
        if frame.action == "StopTransaction" and entry is not None:
            self.transactions.close(entry.charger_id)
        if frame.action == "StartTransaction":
            return self._started(answer, frame, owner="strom", backend_id=None)
        return answer

    def _started(self, answer: str, frame: Frame, *, owner: str,
                 backend_id: int | None) -> str:
        """Register the transaction strom's StartTransaction answer opened; the answer with
        the id the charger is to use."""
        data = json.loads(answer)
        if data[0] != CALLRESULT:
            return answer
        strom_id = data[2]["transactionId"]
        entry = self.transactions.by_strom_id(strom_id)  # a retried StartTransaction
        if entry is None:
            entry = self.transactions.add(strom_id, strom_id=strom_id, backend_id=backend_id,
                                          owner="strom" if owner == "strom" else "backend",
                                          connector_id=frame.payload.get("connectorId", 0))
        if entry.charger_id == strom_id:
            return answer
        return with_payload(answer, {**data[2], "transactionId": entry.charger_id})

    def _entry(self, frame: Frame) -> TxEntry | None:
        tid = frame.payload.get("transactionId")
        return self.transactions.get(tid) if isinstance(tid, int) else None

    async def _observe(self, frame: Frame, entry: TxEntry | None) -> str:
        """Run strom's handler on the charger's call (its transaction id as strom knows it);
        its answer is returned, not sent."""
        if frame.action in TRANSACTION_CALLS and "transactionId" in frame.payload:
            payload = dict(frame.payload)
            if entry is None or entry.strom_id is None:
                # A transaction strom has no record of (its backend's, from before a restart):
                # its readings count for the connector only.
                del payload["transactionId"]
                if frame.action == "StopTransaction":
                    return json.dumps([CALLRESULT, frame.unique_id, {}])
            else:
                payload["transactionId"] = entry.strom_id
            frame = replace(frame, payload=payload)
        return await self._capture(frame)

    # --- the backend's transactions and everything else -------------------------------------

    async def _backends(self, frame: Frame, raw: str) -> None:
        action, payload = frame.action or "", frame.payload
        entry = self._entry(frame) if action in TRANSACTION_CALLS else None
        start = _Start()

        def render() -> str:
            # At send time: a replayed call may name a transaction the backend has since
            # given its own id.
            if entry is not None and entry.backend_id not in (None, entry.charger_id):
                return with_payload(raw, {**payload, "transactionId": entry.backend_id})
            return raw

        def answered(answer: Frame) -> None:
            if action == "StartTransaction" and answer.message_type == CALLRESULT:
                tid = answer.payload.get("transactionId")
                start.backend_id = tid if isinstance(tid, int) else None
                if start.entry is not None:
                    start.entry.backend_id = start.backend_id
            if action in ID_TAG_CALLS and answer.message_type == CALLRESULT:
                self._remember(payload.get("idTag"), answer.payload.get("idTagInfo"))

        item = Outgoing(action, frame.unique_id, render, len(raw.encode()), answered=answered)
        got = await self.upstream.forward(item)
        if got is not None:
            await self._backend_answered(frame, entry, got, start)
        else:
            await self._send(await self._answer_for_backend(frame, entry, start))
        if action == "StopTransaction" and entry is not None:
            self.transactions.close(entry.charger_id)

    async def _backend_answered(self, frame: Frame, entry: TxEntry | None,
                                got: Answer, start: _Start) -> None:
        """The backend's answer goes to the charger as written; then strom takes note."""
        answer, text = got
        if frame.action == "StartTransaction" and answer.message_type == CALLRESULT \
                and isinstance(start.backend_id, int):
            start.entry = self.transactions.add(
                start.backend_id, strom_id=None, backend_id=start.backend_id, owner="backend",
                connector_id=frame.payload.get("connectorId", 0))
            if start.entry.charger_id != start.backend_id:
                text = with_payload(text, {**answer.payload,
                                           "transactionId": start.entry.charger_id})
        await self._send(text)
        if frame.action == "Authorize":
            return  # nothing to record
        mine = await self._observe(frame, entry)
        if start.entry is not None:
            data = json.loads(mine)
            if data[0] == CALLRESULT:
                start.entry.strom_id = data[2]["transactionId"]

    async def _answer_for_backend(self, frame: Frame, entry: TxEntry | None,
                                  start: _Start) -> str:
        """strom's answer while the backend is away: its own, with idTags the backend had
        accepted accepted (as a charger's authorization cache would), others Invalid."""
        if frame.action == "Authorize":
            return json.dumps([CALLRESULT, frame.unique_id,
                               {"idTagInfo": {"status": self._cached(frame.payload.get("idTag"))}}])
        mine = await self._observe(frame, entry)
        if frame.action != "StartTransaction":
            return mine
        data = json.loads(mine)
        if data[0] != CALLRESULT:
            return mine
        data[2]["idTagInfo"] = {"status": self._cached(frame.payload.get("idTag"))}
        answer = self._started(json.dumps(data, separators=(",", ":")), frame,
                               owner="backend", backend_id=start.backend_id)
        start.entry = self.transactions.by_strom_id(data[2]["transactionId"])
        return answer


    # --- the backend's calls to the charger -------------------------------------------------

    async def _refusal(self, action: str, payload: dict[str, Any]) -> dict[str, Any] | None:
        strom_connectors: set[int] = set()
        if self._sessions is not None:
            strom_connectors = (await self._sessions.busy_connectors(self.id)
                                | self.transactions.connectors("strom"))
        return refuse_backend_call(action, payload, strom_connectors=strom_connectors,
                                   transactions=self.transactions)

    def _for_charger(self, action: str, payload: dict[str, Any], raw: str) -> str:
        if action == "RemoteStopTransaction":
            tid = payload.get("transactionId")
            entry = self.transactions.by_backend_id(tid) if isinstance(tid, int) else None
            if entry is not None and entry.charger_id != entry.backend_id:
                return with_payload(raw, {**payload, "transactionId": entry.charger_id})
        return raw

    # --- strom's calls to the charger -------------------------------------------------------

    async def call(self, payload: Any, *, still_wanted: StillWanted | None = None) -> Any:
        """strom's own calls: none in a pure proxy; never a start on the backend's connector;
        a stop in the charger's id of the transaction."""
        if isinstance(payload, call.RemoteStartTransaction) and (
                not self.lightning
                or payload.connector_id in self.transactions.connectors("backend")):
            return call_result.RemoteStartTransaction(status="Rejected")
        if isinstance(payload, call.RemoteStopTransaction):
            entry = self.transactions.by_strom_id(payload.transaction_id)
            if entry is not None and entry.charger_id != payload.transaction_id:
                payload = replace(payload, transaction_id=entry.charger_id)
        return await super().call(payload, still_wanted=still_wanted)


class Passthrough:
    """Makes the connection of a charger that has an `upstream`; the central system asks it
    for each charger (`CentralSystem.connection_factory`), with the record its handshake read.
    `sessions` is set once strom's sessions exist (without them, chargers are served as pure
    proxies)."""

    def __init__(self, settings: PassthroughSettings, *, outbound: Outbound | None,
                 max_message_bytes: int) -> None:
        self._settings = settings
        self._outbound = outbound
        self._max_message_bytes = max_message_bytes
        self.sessions: LightningSessions | None = None
        self._states: dict[str, ChargerState] = {}
        self._current: dict[str, PassthroughCore] = {}

    async def __call__(self, cp: ChargerRecord, websocket: Any,
                       context: OcppContext | V201Context,
                       response_timeout: float) -> PassthroughCore | None:
        cp_id = cp.id
        if not cp.upstream:
            return None
        try:
            config = UpstreamConfig.from_json(cp.upstream)
        except UpstreamError as exc:
            log.error("%s: %s; serving it without its backend", cp_id, exc)
            return None
        speaks = OCPP201 if isinstance(context, V201Context) else OCPP16
        if config.subprotocol != speaks:
            log.error("%s: connected with %s but its upstream speaks %s; serving it without "
                      "its backend", cp_id, speaks, config.subprotocol)
            return None
        old = self._current.get(cp_id)
        if old is not None:
            # The charger reconnected: its old backend link stops sending before the new one
            # takes over their shared queue (the old socket may take a while to close).
            await old.upstream.close()
        kwargs: dict[str, Any] = dict(
            config=config, settings=self._settings, sessions=self.sessions,
            outbound=self._outbound, max_message_bytes=self._max_message_bytes,
            state=self._states.setdefault(cp_id, ChargerState()))
        conn: PassthroughCore = (
            V201PassthroughConnection(cp_id, websocket, context, response_timeout, **kwargs)
            if isinstance(context, V201Context)
            else PassthroughConnection(cp_id, websocket, context, response_timeout, **kwargs))
        self._current[cp_id] = conn
        return conn
